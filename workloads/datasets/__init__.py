"""What a workload is judged on: the ``[workload.data]`` table, image folders, mask folders
and COCO files read and validated the way users have them.
"""
