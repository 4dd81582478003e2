"""The views of the dashboard, one module each; every module's ``show`` draws its page.

* ``runs``: every opened run and model, with its probe accuracy and relevance summary.
* ``simplices``: the simplex browser (one simplex's vertices, top images and entropy at any tau).
* ``graph``: W_K at any K and a category's 2-neighbours.
* ``relevance``: relevance vs K of every opened model, with its permutation-null band.
* ``entropy``: :func:`semprobe.entropy.entropy_report`'s tables, live or precomputed.
* ``compare``: two models side by side on the same K and tau.
"""
