"""bench/report.py's parts: results (the JSON) -> the Markdown of RESULTS.md and the plots.

figures.py   reading a figure out of the results, and formatting it
targets.py   issue 17's targets (and the earlier issues'): met or not, as a table
markdown.py  the whole RESULTS.md text
plots.py     the PNG plots (matplotlib, Agg)
"""
