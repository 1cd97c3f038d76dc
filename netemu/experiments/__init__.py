"""netemu.experiments: scenario files with a timeline of events, measured second by second.

A layer above traffic (it sends load through netemu.traffic) and below the CLI (``netemu
experiment run|check|compare``). The modules, in the order a run uses them:

- located.py / fields.py: YAML with lines, typed fields with every problem at FILE:LINE;
- schema.py (the scenario), eventspec.py (the event kinds), validate.py (names, times, kernel);
- cluster.py (bring up / attach, objects), settle.py (the "settled" barrier), scrape.py
  (kube-proxy metrics per node), actions.py (what events do), agentctl.py (stop/start agents);
- timeline.py (phases and events on one clock), series.py (per-second data), plots.py,
  report.py, compare.py, run.py (the result folder).
"""
