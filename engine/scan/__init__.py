"""Stage 4, scan: the driver that runs the other stages over a finite input, and its report.

Files (parallel: one process or --workers processes) or a stream (pipeline: stdin, rule
tests, the daemon) are scanned (filescan) and decided (deciding) by the same code, which
counts everything a user needs to trust the result (counts); the backtest report and its
HTML page read those counts. Import the modules themselves (engine.scan.pipeline, ...): this
package re-exports nothing.
"""
