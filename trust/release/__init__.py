"""Release: per subscription, count persons by cell, apply disclosure control, sign, record, send.

The flow, in modules: :mod:`~trust.release.streams` (what a stream counts),
:mod:`~trust.release.counts` (the stage's own projection: counted persons per cell, kept by a
follower of the store), :mod:`~trust.release.aggregate` (counts -> a complete count table),
:mod:`~trust.release.disclosure` (what may be published), :mod:`~trust.release.publish` (the
signed release, and the publisher that sends what was recorded). The release plan — which sources,
which k — comes from the policy point (:mod:`trust.stewardship.policy`) before any count is read.
"""
