"""CI: ``farm gate`` checks a candidate job against budgets and a baseline job, and confirms
apparent slowdowns by re-measuring both artifacts before it fails a build.
"""
