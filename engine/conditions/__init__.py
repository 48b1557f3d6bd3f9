"""Stage 2, conditions: which rules a record matches, and why.

The JMESPath functions, the expression checks, the compiler to Python and its per-bucket
specialisation, the evaluator that runs them, and explain/catalogue that show them are one
stage: they turn a record into matches and hold no state across records. Import the modules
themselves (engine.conditions.evaluator, ...): this package re-exports nothing.
"""
