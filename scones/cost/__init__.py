"""``scones cost``: what the workflow costs on AWS, measured from the execution histories.

Modules: ``history`` (one execution's events -> transitions, retries, Lambda attempts; pure),
``usage`` (sums over executions; functions' memory and architecture from ``template.yaml``),
``source`` (the boto3 calls: executions, histories, Data Capture listing), ``pricing`` (the price
table, ``prices/<region>.json``), ``options`` (the options priced side by side, break-even),
``report`` (JSON and text), ``chart`` (PNG + HTML), ``cli``.
"""
