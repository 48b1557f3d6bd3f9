"""Stage 4, scan: the driver that runs the other stages over a finite input, and its report.

One process (pipeline) or --workers processes (parallel) feed inputs through conditions and
decide and count everything a user needs to trust the result; the backtest report and its
HTML page read those counts. Import the modules themselves (engine.scan.pipeline, ...): this
package re-exports nothing.
"""
