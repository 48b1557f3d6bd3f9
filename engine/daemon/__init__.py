"""The daemon: sources -> pipeline -> outputs, with at-least-once acknowledgement."""
