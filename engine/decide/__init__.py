"""Stage 3, decide: matches become alerts, on event time.

The decider's clock and reorder buffer, the in-process threshold lane, each rule's plan,
the cross-file merge, record stubs and the sequence/absence rules are one stage: they hold
state across records and own when a match turns into an alert. Import the modules themselves
(engine.decide.decider, ...): this package re-exports nothing.
"""
