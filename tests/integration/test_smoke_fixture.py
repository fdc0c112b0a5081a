from docko_worker import JobState, Queue


async def test_enqueued_job_is_available(queue: Queue) -> None:
    job = await queue.enqueue("default", "ocr", {"document": 1})
    stored = await queue.get_job(job.id)
    assert stored is not None
    assert stored.state is JobState.AVAILABLE
    assert stored.payload == {"document": 1}
