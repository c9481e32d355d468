"""The read side: budgets, what would ship (``recommend``), a job name's history and the
release card. Reads only the store.
"""
