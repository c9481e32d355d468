"""What runs on a node for one candidate: building its artifact (:mod:`~farm.worker.build`),
evaluating it on the target's runtime (:mod:`~farm.worker.evaluate`: quality on the eval split,
then the latency measurement), and the Ray tasks around both (:mod:`~farm.worker.remote`).
"""
