"""What runs on a node for one candidate: building its artifact, evaluating it on the
target's runtime (quality on the eval split, then the latency measurement).
"""
