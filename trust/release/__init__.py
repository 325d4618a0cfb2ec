"""Release: aggregate persons into a stream's table, apply disclosure control, sign, publish.

The flow, in modules: :mod:`~trust.release.streams` (what a stream counts),
:mod:`~trust.release.aggregate` (persons -> a complete count table),
:mod:`~trust.release.disclosure` (what may be published), :mod:`~trust.release.publish`
(the signed release on ``tip.release.<stream>``). No database access here: the runner passes
persons in and records the ``ReleaseIssued`` event the emitter reports.
"""
