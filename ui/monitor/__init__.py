"""The run monitor and history views: live Gantt and resource charts, outputs, reports, comparison."""
