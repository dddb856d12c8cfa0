"""``ballast sweep``: parameter studies and walk-forward tests over ordinary backtests.

One module per concept: the grid file (:mod:`.grid`), its variants (:mod:`.variants`), their
configs (:mod:`.configs`, through the one config validation), walk-forward windows
(:mod:`.windows`), one variant's backtest (:mod:`.task`), where tasks run (:mod:`.executors`: in
process, a local process pool, or Ray), the results kept for a resume (:mod:`.store`), the
results table (:mod:`.table`) and the HTML report (:mod:`.report`); :mod:`.runner` puts them
together.
"""
