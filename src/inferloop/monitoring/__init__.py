"""Monitoring step: drift, performance once labels arrive, bias, the policy, reports and sinks.

:func:`inferloop.monitoring.monitor.monitor_batch` judges one scored batch;
:func:`inferloop.monitoring.stage.monitor_files` is the entry that the CLI and the daily job call."""

__all__: list[str] = []
