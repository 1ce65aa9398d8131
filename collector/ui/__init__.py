"""The status page (``service.telemetry.ui``): panels from the components' snapshots and sampled metrics,
as HTML with inline SVG and as a JSON API; ``tracetriage status`` prints its summary."""
