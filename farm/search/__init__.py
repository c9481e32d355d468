"""What to try next: each target's search space, the screening design, and the candidates
(workload + transform chain + target + runtime options, content-hashed) the studies propose.
"""
