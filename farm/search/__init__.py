"""What to try next: each target's search space, the screening design, the sampler, the
objectives, and the candidates (workload + transform chain + target + runtime options,
content-hashed) the studies propose.
"""
