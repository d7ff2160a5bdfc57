"""The storyreel worker: runs the workflow and the activities on the task queues it is given.

python worker.py                       # every queue this machine can serve
python worker.py --queues workflows    # only the generation workflow
python worker.py --queues clips:local,media
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.assembly import AssemblyActivities, FinishingOptions
from activities.batches import BatchActivities
from activities.clips import ClipActivities
from activities.errors import ErrorMapper
from activities.llm_planner import LLMPlanner
from activities.media.audio import TTS, close_tts, make_tts
from activities.notify import NotifyActivities
from activities.own import OwnMaterialActivities
from activities.planning import plan_generation
from activities.providers import ClipProvider, ImageProvider, registry
from activities.records import RecordActivities
from activities.storyboard import StoryboardActivities
from storyreel.db import Records, open_records
from storyreel.logs import configure_logging
from storyreel.metrics import WorkerMetrics, new_registry
from storyreel.providers import PROVIDERS, enabled_providers
from storyreel.settings import Settings, get_settings
from storyreel.storage import Storage, storage_from_settings
from storyreel.temporal import connect, exit_after
from storyreel.versioning import deployment_config
from workflows.batch import BatchWorkflow
from workflows.generation import VideoGenerationWorkflow
from workflows.notify import NotifyWorkflow

log = logging.getLogger("storyreel.worker")

GRACEFUL_SHUTDOWN = timedelta(seconds=30)


def local_providers(
    settings: Settings, executor: Executor
) -> tuple[dict[str, ClipProvider], dict[str, ImageProvider]]:
    """The embedded FFmpeg providers, rendering on the worker's executor."""
    built = registry.build(PROVIDERS["local"], settings, executor)
    assert built.images is not None
    return {"local": built.clips}, {"local": built.images}


def default_queues(settings: Settings) -> list[str]:
    """Every queue this machine can serve: the workflow, media, and the clips of every provider
    its settings switch on (the registry says which setting switches each on)."""
    return ["workflows", "media", *(f"clips:{spec.name}" for spec in enabled_providers(settings))]


@asynccontextmanager
async def open_providers(
    settings: Settings, executor: Executor
) -> AsyncIterator[tuple[dict[str, ClipProvider], dict[str, ImageProvider]]]:
    """Every provider the settings switch on, built as the registry says; clients close on
    exit."""
    clips: dict[str, ClipProvider] = {}
    images: dict[str, ImageProvider] = {}
    async with AsyncExitStack() as stack:
        for spec in enabled_providers(settings):
            built = registry.build(spec, settings, executor)
            if built.close is not None:
                stack.push_async_callback(built.close)
            clips[spec.name] = built.clips
            if built.images is not None:
                images[spec.name] = built.images
        yield clips, images


def workflow_runner() -> WorkflowRunner:
    """Temporal's sandbox, with imported modules shared instead of re-imported for every run.

    By default the sandbox re-executes the workflow module and everything it imports (not
    marked pass-through) for each new run: measured on 2 cores, that compiling cost a third of
    the orchestration throughput (deploy/bench B2). The sandbox still refuses non-deterministic
    calls (clocks, randomness, I/O) at run time; what it no longer isolates is module-level
    state, and workflows/ keeps none (constants only). The replay tests guard determinism.
    """
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_all_modules()
    )


def build_workers(
    client: Client,
    settings: Settings,
    queues: Sequence[str],
    executor: ThreadPoolExecutor,
    *,
    storage: Storage | None = None,
    clip_providers: dict[str, ClipProvider] | None = None,
    image_providers: dict[str, ImageProvider] | None = None,
    records: Records | None = None,
    tts: TTS | None = None,
    metrics: WorkerMetrics | None = None,
    llm_planner: LLMPlanner | None = None,
) -> list[Worker]:
    """One Temporal worker per queue kind; tests pass their own providers."""
    storage = storage or storage_from_settings(settings)
    default_clips, default_images = local_providers(settings, executor)
    clip_providers = clip_providers if clip_providers is not None else default_clips
    image_providers = image_providers if image_providers is not None else default_images
    work_root = settings.data_dir / "tmp"
    # Every worker of one release shares the build id (unversioned when none is set).
    versioning = deployment_config(settings.worker_build_id)
    # What every worker of this process shares: its client, a graceful stop, the release's
    # build id, and the one mapper that hands every activity's StoryreelError to Temporal as an
    # ApplicationError. (The clip workers' activities are async: they take no executor.)
    worker = functools.partial(
        Worker,
        client,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        deployment_config=versioning,
        interceptors=[ErrorMapper()],
    )
    # Activities that report progress: heartbeats (and their details, the live percent; and a
    # cancellation, the other way) cross within this, not 80 % of the heartbeat timeout.
    throttle = timedelta(seconds=settings.heartbeat_throttle_seconds)
    workers: list[Worker] = []
    for queue in queues:
        kind, _, provider = queue.partition(":")
        if kind in ("workflows", "media") and records is None:
            raise ValueError(f"the {kind} queue needs the records database: pass records=")
        if kind == "workflows":
            assert records is not None
            batches = BatchActivities(records)
            notify = NotifyActivities(records, settings.webhook_allow_private)
            workers.append(
                worker(
                    task_queue=settings.workflow_task_queue,
                    workflows=[VideoGenerationWorkflow, BatchWorkflow, NotifyWorkflow],
                    # Runs write their record (batches their bookkeeping) on this queue: taken
                    # eagerly by this worker. Webhook deliveries too: a short POST that needs
                    # the records (the owner's secret), never behind FFmpeg work.
                    activities=[
                        RecordActivities(records).record_generation,
                        batches.claim_batch_item,
                        batches.close_batch,
                        notify.deliver_webhook,
                    ],
                    activity_executor=executor,
                    workflow_runner=workflow_runner(),
                )
            )
        elif kind == "media":
            assembly = AssemblyActivities(
                storage,
                work_root,
                settings.ffmpeg_path,
                finishing_options(settings, tts),
                on_published=metrics or WorkerMetrics(),
            )
            storyboard = StoryboardActivities(storage, image_providers, work_root)
            own = OwnMaterialActivities(
                storage, work_root, settings.ffmpeg_path, settings.ffmpeg_preset
            )
            planner = llm_planner or build_llm_planner(settings)
            assert records is not None
            recorder = RecordActivities(records)
            workers.append(
                worker(
                    task_queue=settings.media_task_queue,
                    activities=[
                        plan_generation,
                        planner.plan_with_llm,
                        storyboard.render_storyboard,
                        assembly.stitch_video,
                        assembly.publish_generation,
                        own.use_asset,
                        recorder.record_generation,
                    ],
                    activity_executor=executor,
                    max_concurrent_activities=settings.executor_size(),
                    max_heartbeat_throttle_interval=throttle,
                )
            )
        elif kind == "clips" and provider:
            if provider not in clip_providers:
                spec = PROVIDERS.get(provider)
                hint = spec.hint if spec is not None else f"use one of {', '.join(PROVIDERS)}"
                raise ValueError(f"no {provider!r} clip provider here: {hint}")
            clips = ClipActivities(
                storage,
                clip_providers,
                work_root,
                settings.ffmpeg_path,
                settings.price,
                settings.ffmpeg_preset,
            )
            limit = settings.provider_limit(provider)
            workers.append(
                worker(
                    task_queue=settings.clip_task_queue(provider),
                    activities=[
                        clips.generate_clip,
                        clips.submit_clip,
                        clips.check_prediction,
                        clips.cancel_prediction,
                        clips.describe_model,
                    ],
                    max_heartbeat_throttle_interval=throttle,
                    # Provider-wide limits: the server spreads starts across all workers.
                    max_concurrent_activities=limit.max_concurrent,
                    max_task_queue_activities_per_second=limit.activities_per_second,
                )
            )
        else:
            raise ValueError(f"unknown queue {queue!r}: use workflows, media or clips:<provider>")
    return workers


def finishing_options(settings: Settings, tts: TTS | None) -> FinishingOptions:
    """How this worker captions, narrates and encodes (requests only choose what)."""
    return FinishingOptions(
        tts=tts,
        font=settings.font_file,
        threads=settings.ffmpeg_threads or None,
        preset=settings.ffmpeg_preset,
        overlay_parallel=settings.overlay_parallel,
        overlay_max_workers=settings.overlay_max_workers,
        music_volume=settings.music_volume,
    )


def build_llm_planner(settings: Settings) -> LLMPlanner:
    """Planner 'llm' from settings: the key stays in this worker (never in a workflow input)."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return LLMPlanner(settings.llm_base_url, settings.llm_model, key)


def build_tts(settings: Settings) -> TTS:
    """The configured narration voice, built once per worker (close it with close_tts)."""
    key = settings.tts_api_key.get_secret_value() if settings.tts_api_key else None
    return make_tts(
        settings.tts_provider,
        url=settings.tts_url,
        api_key=key,
        model=settings.tts_model,
        voice=settings.tts_voice,
        timeout=settings.tts_timeout_seconds,
        exe=settings.ffmpeg_path,
    )


def temporal_runtime(settings: Settings) -> Runtime | None:
    """A runtime exporting the Temporal SDK's own metrics, when a port is configured."""
    if settings.temporal_metrics_port is None:
        return None
    address = f"0.0.0.0:{settings.temporal_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def serve(settings: Settings, queues: Sequence[str]) -> None:
    """Run until SIGTERM or SIGINT, then let running activities finish (graceful shutdown)."""
    client = await connect(settings, temporal_runtime(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=settings.executor_size()) as executor:
        async with AsyncExitStack() as stack:
            tts = build_tts(settings)
            stack.callback(close_tts, tts)
            metrics = WorkerMetrics(new_registry())
            if settings.metrics_port is not None:
                server, _ = start_http_server(settings.metrics_port, registry=metrics.registry)
                stack.callback(server.shutdown)
                log.info("metrics on :%d/metrics", settings.metrics_port)
            await stack.enter_async_context(
                running_workers(client, settings, queues, executor, tts=tts, metrics=metrics)
            )
            log.info("worker polling %s", ", ".join(queues))
            await stop.wait()
            log.info("shutting down: waiting for running activities")


@asynccontextmanager
async def running_workers(
    client: Client,
    settings: Settings,
    queues: Sequence[str],
    executor: ThreadPoolExecutor,
    *,
    clip_providers: dict[str, ClipProvider] | None = None,
    image_providers: dict[str, ImageProvider] | None = None,
    records: Records | None = None,
    tts: TTS | None = None,
    metrics: WorkerMetrics | None = None,
) -> AsyncIterator[None]:
    """The workers for ``queues`` polling; on exit they shut down gracefully and what this
    opened closes.

    By default the configured providers and the records database are opened here. Tests and
    scripts may pass their own providers (the local FFmpeg ones stand in for a mapping they
    leave out) and their own ``records`` (theirs to close).
    """
    async with AsyncExitStack() as stack:
        if clip_providers is None and image_providers is None:
            clip_providers, image_providers = await stack.enter_async_context(
                open_providers(settings, executor)
            )
        if records is None:
            records = open_records(settings)
            stack.callback(records.dispose)
        workers = build_workers(
            client,
            settings,
            queues,
            executor,
            clip_providers=clip_providers,
            image_providers=image_providers,
            records=records,
            tts=tts,
            metrics=metrics,
        )
        for worker in workers:
            await stack.enter_async_context(worker)
        yield


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--queues",
        default="",
        help="comma-separated: workflows, media, clips:<provider> "
        "(default: workflows, media and clips of every configured provider)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(json=settings.log_format == "json")
    queues = [queue.strip() for queue in args.queues.split(",") if queue.strip()]
    asyncio.run(serve(settings, queues or default_queues(settings)))


if __name__ == "__main__":
    exit_after(main)
