"""A/B experiments: which arm a unit gets (assignment), what was served and what came of it (store), and
whether the arms differ (stats, report, charts). The router and the server consult this stage; it needs
nothing from them."""
