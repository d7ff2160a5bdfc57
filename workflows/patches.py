"""The ``workflow.patched`` ids of ``VideoGenerationWorkflow``, each with its removal plan.

A patch keeps a change from breaking runs that started on the code before it: a run that
replays past the patch point without the patch's marker takes the old branch. Each one is
removed in three deploys, the way Temporal's own patching samples do it:

1. **patched** (now): ``if workflow.patched(ID): new else: old``. New runs record the marker.
2. **deprecate**: once no run started before the patch's deploy can still be open, keep only
   the new branch and call ``workflow.deprecate_patch(ID)`` in place of ``patched`` (runs that
   recorded the marker still replay; new runs stop recording it). A stored history recorded
   before the patch (``tests/workflows/histories/*@<older commit>.json``) that then fails to
   replay is deleted in the same change: no run like it can still exist.
3. **remove**: once no run started before the deprecating deploy can be open, drop the
   ``deprecate_patch`` call and the id.

"No run can still be open" is checked, not assumed: a run can await a storyboard review
(``review_window_seconds``, 7 days by default) and then each retry round of failed clips
(``retry_window_seconds``, 24 h by default, again per round), so its age has no fixed
bound. Before steps 2 and 3, count the runs older than the deploy (the Web UI or
``temporal workflow count --query 'WorkflowType="VideoGenerationWorkflow" AND
ExecutionStatus="Running" AND StartTime < "<deploy time>"'``): 0 means go; otherwise wait,
or end those runs deliberately (terminate or let their windows lapse). Runs older than the
namespace's retention are never replayed again, so that is the latest a step can wait for.
"""

from __future__ import annotations

# Deployed with 77727d0 (2026-11-21). Runs with an owner write their record at every stage
# (on the workflow's own queue, so the write is immediate) and the API reads running state
# from the record. Old branch: milestones only, on the media queue. Step 2 removes
# ``_record_stages`` (always true for runs with an owner) and the media-queue branch of
# ``_record``.
RECORD_STAGES = "record-every-stage"

# Deployed with f048402 (2026-11-25). Record writes are local activities (run by the
# workflow's own worker, shown as markers): the Web UI timeline of a run is its clips,
# storyboard and stitch, not a dozen "record" activities. Checked only where RECORD_STAGES
# holds, so it can reach step 2 together with RECORD_STAGES or after it, never before.
LIGHT_RECORDS = "record-as-local-activity"

# Deployed with 0017088 (2026-11-25). A clip prompt without consistency context has no
# leading blank lines; runs begun before it keep the prompts (and clip cache keys) they
# started with. Step 2 removes the ``legacy`` prefix in ``_plan``.
PLAIN_PROMPT = "prompt-without-empty-context"

# Added with the ``describe_model`` activity (2026-12-02). A run on a model outside the
# catalogue whose provider publishes model schemas (``ClipPricing.discoverable``) reads the
# model on its clip queue (``describe_model``) before its plan, is planned toward and quoted at
# the lengths the provider will bill, and fails when they exceed the platform's limit or the
# budget. Old branch: planned and quoted at the scenes' lengths, the model read only by each
# clip. Step 2 keeps only the new branch of ``_read_model``.
PRICE_UNLISTED = "price-unlisted-model"

# Added with outbound webhooks (issue 22, 2026-12-02). A run (or batch) whose request has a
# ``webhook`` starts one ``NotifyWorkflow`` child per event its filter selects. Checked only
# when the request has a webhook, which no run started before it can have: no old history
# reaches it. Step 2 keeps only the new branch of ``workflows.notify.Notifier.begin`` and
# ``BatchWorkflow._notify``.
NOTIFY_WEBHOOK = "notify-webhook"
# Added with uploads (2026-12-02). A scene with ``asset`` (the caller's own video or image) is
# made by ``use_asset`` on the media queue instead of a provider's clip. Only runs with such a
# scene reach the check, and none could exist before it. Step 2 drops the check.
OWN_MATERIAL = "own-material-scenes"

# Added with drafts (2026-12-02). A final made from a draft (``storyboards`` given) takes the
# draft's storyboard instead of drawing one. Only such runs reach the check. Step 2 drops it.
FINAL_OF_DRAFT = "final-of-draft"
