"""Ray and the machines: starting or joining a cluster, which nodes serve which targets,
and node leases that keep a measurement alone on its node.
"""
