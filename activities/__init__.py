"""Everything that touches the outside world: planning, rendering, stitching, publishing."""
