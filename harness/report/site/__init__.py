"""The report as a static interactive site: `python -m harness.report RESULTS --site OUT`.

Plain HTML pages that open from `file://` with no server and no network: plotly.js written once
into OUT (the version the plotly package pins), a small script for sorting and filtering tables
(static/site.js), and a CSV next to every table. Every number comes from the report's own tables
and statistics (harness/report/build.py, tables.py, stats.py); this package only lays them out.
"""
