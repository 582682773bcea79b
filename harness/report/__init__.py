"""Reports over finished runs: comparison tables with significance, plots, leaderboards and the CI gate.

    results       load runs/<recipe>/results.json (one file per run: runs from many processes merge)
    significance  paired two-sided t-tests over per-query values, Holm-corrected across a table
    tables        rows = recipes, columns = dataset x measure + efficiency; Markdown, CSV, HTML, LaTeX
    plots         efficiency-effectiveness with its Pareto frontier, training-loss curves (PNG + SVG)
    leaderboard   leaderboards/<suite>/: README.md, results.csv, index.html (sortable, works offline)
    gate          <recipe>.expect.toml beside a recipe; OK / OKish / FAIL per dataset and measure; JUnit
    files         atomic writes of every output

Nothing heavy is imported here: ``harness --help`` stays instant.
"""
