"""The dashboard's pages (GET: they read, never change) and actions (POST, through the
operations API only: ``operations.cancel``/``retry``, ``Queue.cancel_jobs``/``retry_jobs``,
``Queue.pause``/``resume``).

Every action is refused, before its body is read, in read-only mode and when the browser says
it comes from another origin; then its CSRF token must match the session (see ``security``).
It answers with a redirect to a page (post/redirect/get) whose address names what happened
(``notice``), and logs ``dashboard_action`` with what it did and for which client.
"""

from __future__ import annotations

from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .. import operations
from ..errors import DockoError
from ..job import JobState
from ..operations import parse_job_id
from ..payloads import check_text
from ..store import JobFilter, JobStore
from .data import DashboardData
from .filters import PAGE_SIZE, FormTooLarge, JobFilters, read_form
from .render import Links, Renderer, pretty
from .security import CSRF_FIELD, Csrf, cross_origin

log = structlog.get_logger("docko_worker.dashboard")

NOTICES = {
    "cancelled": "Job cancelled: it will not run.",
    "stopping": "The job is running: its daemon was asked to stop it.",
    "retried": "Job retried: it is available again, due now.",
    "unchanged": "Nothing changed: the job is already finished, or not in a state this applies to.",
    "retry_refused": "Not retried: an unfinished job holds its dedupe key.",
    "missing": "No such job.",
    "paused": "Queue paused: no daemon claims from it until it is resumed. Running jobs finish.",
    "resumed": "Queue resumed.",
    "bulk_retried": "Retried {count} jobs.",
    "bulk_cancelled": "Cancelled {count} jobs (running ones were asked to stop).",
    "not_found": "No job has that id.",
}
_CANCELLABLE = (JobState.AVAILABLE, JobState.RUNNING)
_RETRYABLE = (JobState.FAILED, JobState.CANCELLED)


def notice_of(request: Request) -> str | None:
    text = NOTICES.get(request.query_params.get("notice", ""))
    if text is None:
        return None
    count = request.query_params.get("count", "")
    return text.format(count=f"{int(count):,}" if count.isdigit() else "some")


class Views:
    def __init__(self, data: DashboardData, renderer: Renderer, csrf: Csrf) -> None:
        self.data = data
        self.render = renderer
        self.csrf = csrf

    @property
    def read_only(self) -> bool:
        return self.render.read_only

    # Pages

    async def overview(self, request: Request) -> Response:
        overview = await self.data.overview()
        return self.render.page(
            request, "overview", {"overview": overview, "notice": notice_of(request)}
        )

    async def jobs(self, request: Request) -> Response:
        filters, problems = JobFilters.read(request.query_params)
        queue = await self.data.get_queue()
        jobs = await queue.list_jobs(
            queue_name=filters.queue,
            job_type=filters.type,
            state=filters.state,
            limit=PAGE_SIZE,
            before=filters.before,
        )
        names = [info.name for info in await queue.queues()]
        if filters.queue is not None and filters.queue not in names:
            names.append(filters.queue)
        context = {
            "jobs": jobs,
            "filters": filters,
            "problems": problems,
            "queue_names": names,
            "older": jobs[-1].id if len(jobs) == PAGE_SIZE else None,
            "can_retry_all": filters.state in _RETRYABLE,
            "can_cancel_all": filters.state in (None, *_CANCELLABLE),
            "notice": notice_of(request),
        }
        return self.render.page(request, "jobs", context)

    async def find(self, request: Request) -> Response:
        links = _links(request)
        try:
            job_id = parse_job_id(request.query_params.get("id", ""))
        except DockoError:
            return RedirectResponse(links("/jobs", notice="not_found"), status_code=303)
        return RedirectResponse(links.job(job_id), status_code=303)

    async def job(self, request: Request) -> Response:
        try:
            job_id = parse_job_id(request.path_params["job_id"])
        except DockoError as exc:
            return self._refused(request, str(exc), 404)
        queue = await self.data.get_queue()
        job = await queue.get_job(job_id)
        if job is None:
            return self._refused(request, f"No job {job_id}: it never existed, or was pruned.", 404)
        payload, cut = pretty(job.payload)
        context = {
            "job": job,
            "payload": payload,
            "payload_cut": cut,
            "headers": getattr(job, "headers", None) or {},
            "can_cancel": job.state in _CANCELLABLE,
            "can_retry": job.state in _RETRYABLE,
            "notice": notice_of(request),
        }
        return self.render.page(request, "job", context)

    async def periodic(self, request: Request) -> Response:
        queue = await self.data.get_queue()
        return self.render.page(request, "periodic", {"schedules": await queue.list_periodic()})

    async def bulk_confirm(self, request: Request) -> Response:
        if self.read_only:
            return self._read_only(request)
        action = request.query_params.get("action")
        filters, problems = JobFilters.read(request.query_params)
        if problems or action not in ("retry", "cancel"):
            return self._refused(request, "; ".join(problems) or "unknown bulk action", 400)
        retried = filters.state if filters.state in _RETRYABLE else JobState.FAILED
        if action == "retry":
            filters = JobFilters(filters.queue, filters.type, retried)
        states = (retried,) if action == "retry" else _CANCELLABLE
        store = JobStore((await self.data.get_queue()).pool)
        count = 0
        for state in states:
            count += await store.count_jobs(
                JobFilter(filters.queue, filters.type, state.value, None)
            )
        context = {"action": action, "filters": filters, "count": count, "states": states}
        return self.render.page(request, "confirm", context, live=False)

    # Actions

    async def bulk(self, request: Request) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        filters, problems = JobFilters.read(form)
        if problems:
            return self._refused(request, "; ".join(problems), 400)
        queue = await self.data.get_queue()
        action = form.get("action")
        if action == "retry":
            state = filters.state if filters.state in _RETRYABLE else JobState.FAILED
            count = await queue.retry_jobs(
                queue_name=filters.queue, job_type=filters.type, state=state
            )
            notice = "bulk_retried"
        elif action == "cancel":
            count = await queue.cancel_jobs(queue_name=filters.queue, job_type=filters.type)
            notice = "bulk_cancelled"
        else:
            return self._refused(request, "unknown bulk action", 400)
        self._log(request, f"{action}_jobs", queue=filters.queue, type=filters.type, count=count)
        query = filters.query(before=None)
        return RedirectResponse(
            _links(request)("/jobs", **query, notice=notice, count=count), status_code=303
        )

    async def cancel(self, request: Request) -> Response:
        return await self._job_action(request, "cancel")

    async def retry(self, request: Request) -> Response:
        return await self._job_action(request, "retry")

    async def _job_action(self, request: Request, action: str) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        try:
            job_id = parse_job_id(request.path_params["job_id"])
        except DockoError as exc:
            return self._refused(request, str(exc), 404)
        store = JobStore((await self.data.get_queue()).pool)
        if action == "cancel":
            reason = form.get("reason", "").strip() or None
            try:
                job, changed = await operations.cancel(store, job_id, reason and reason[:1000])
            except DockoError as exc:
                return self._refused(request, str(exc), 400)
            notice = "stopping" if job and job.state is JobState.RUNNING else "cancelled"
        else:
            try:
                job, changed = await operations.retry(store, job_id)
            except DockoError:
                job, changed, notice = None, False, "retry_refused"
            else:
                notice = "retried"
        if job is None and notice != "retry_refused":
            notice = "missing"
        elif not changed and notice != "retry_refused":
            notice = "unchanged"
        self._log(request, action, job_id=str(job_id), changed=changed)
        return RedirectResponse(_links(request)(f"/jobs/{job_id}", notice=notice), status_code=303)

    async def pause(self, request: Request) -> Response:
        return await self._queue_action(request, "pause")

    async def resume(self, request: Request) -> Response:
        return await self._queue_action(request, "resume")

    async def _queue_action(self, request: Request, action: str) -> Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        try:
            name = check_text("queue_name", form.get("queue", ""))
        except DockoError as exc:
            return self._refused(request, str(exc), 400)
        queue = await self.data.get_queue()
        await (queue.pause(name) if action == "pause" else queue.resume(name))
        self._log(request, action, queue=name)
        notice = "paused" if action == "pause" else "resumed"
        return RedirectResponse(_links(request)("/", notice=notice), status_code=303)

    async def _form(self, request: Request) -> dict[str, str] | Response:
        """The action's form, or the refusal to answer with."""
        if self.read_only:
            return self._read_only(request)
        if cross_origin(request):
            return self._refused(request, "Refused: the request came from another site.", 403)
        try:
            form = await read_form(request)
        except FormTooLarge:
            return self._refused(request, "Refused: the form is too large.", 413)
        if not self.csrf.valid(request, form.get(CSRF_FIELD)):
            log.warning("dashboard_csrf_refused", path=request.url.path, client=_client(request))
            return self._refused(
                request,
                "Refused: the form's token does not match this browser session. Reload the "
                "page and try again.",
                403,
            )
        return form

    def _read_only(self, request: Request) -> Response:
        return self._refused(
            request, "Refused: this dashboard is read-only (DOCKO_DASHBOARD_READ_ONLY).", 403
        )

    def _refused(self, request: Request, message: str, status: int) -> Response:
        return self.render.page(
            request, "refused", {"message": message, "status": status}, status=status, live=False
        )

    def _log(self, request: Request, action: str, **fields: Any) -> None:
        log.info("dashboard_action", action=action, client=_client(request), **fields)


def _links(request: Request) -> Links:
    return Links(request.scope.get("root_path", ""))


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
