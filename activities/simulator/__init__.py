"""A Replicate-protocol HTTP simulator, so the Replicate adapter, demos, load tests and
benchmarks run offline against the official API's shapes (and the official client works on it).

    serve(SimulatorConfig(latency=2, fail_rate=0.1), port=8090)   # blocking
    app = create_app(SimulatorConfig(render=False))                # an ASGI app for uvicorn
"""

from activities.simulator.app import create_app, serve
from activities.simulator.engine import Simulator, SimulatorConfig
from activities.simulator.prediction import REFUSAL

__all__ = ["REFUSAL", "Simulator", "SimulatorConfig", "create_app", "serve"]
