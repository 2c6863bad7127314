"""``scones monitor``: read an endpoint's Data Capture and report how the model is doing.

One module per step: ``records`` parses one captured request, ``capture`` finds and reads
capture files (local folder or S3), ``classes`` finds the class names, ``collect`` streams the
records into ``inferences.csv`` and compact arrays, ``figures`` draws the PNGs, ``report``
writes ``report.html``, ``run`` is the use-case (``run_monitor``) and ``cli`` the subcommand.
"""
