"""One owner per image id (issue 17, "Counts that are true"): an ``OKDuplicate`` is ours only when our own
earlier attempt created the image; a twin's image is a duplicate, naming the file that owns it."""

from __future__ import annotations

from datetime import datetime, timezone

from cvbulk.client import Image, ImageCreateResult, ImageCreateSummary
from cvbulk.pipeline.batch import Batch, BatchItem
from cvbulk.pipeline.send import ImageSender, Reclassified
from cvbulk.pipeline.status import Status


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class Scripted:
    """Answers each create call with the next scripted (status, image id) list."""

    def __init__(self, *answers: list[tuple[str, str]]) -> None:
        self.answers = list(answers)

    async def create_images_from_data(self, project_id, images, *, tag_ids=()):
        answer = self.answers.pop(0)
        return ImageCreateSummary(
            is_batch_successful=True,
            images=[
                ImageCreateResult(source_url=name, status=status, image=Image(id=image_id, created=_now()))
                for (name, _), (status, image_id) in zip(images, answer)
            ],
        )


def _batch(*keys: str) -> Batch:
    return Batch("data", tuple(BatchItem(k, k.replace("/", "_"), b"same bytes") for k in keys))


async def test_the_twin_whose_answer_came_first_is_reclassified_when_the_ok_arrives():
    # b's request ran second on the service (OKDuplicate) but its answer came back first: by creation time
    # it looked like ours; the OK for a proves the image is a's.
    sender = ImageSender(Scripted([("OKDuplicate", "X")], [("OK", "X")]), "p")
    (b,) = await sender.send(_batch("b/1.jpg"))
    assert b.status == Status.UPLOADED
    (a,) = await sender.send(_batch("a/1.jpg"))
    assert a.status == Status.UPLOADED
    assert sender.take_reclassified() == [Reclassified("b/1.jpg", "X", "a/1.jpg")]
    assert sender.take_reclassified() == []


async def test_two_files_left_sending_claim_one_image_once():
    sender = ImageSender(Scripted([("OKDuplicate", "X"), ("OKDuplicate", "X")]), "p", by_time=False)
    a, b = await sender.send(_batch("a/1.jpg", "b/1.jpg"), prior={"a/1.jpg": "sending", "b/1.jpg": "sending"})
    assert (a.status, b.status) == (Status.UPLOADED, Status.DUPLICATE)
    assert b.reason == "the same image is already in the project (uploaded from a/1.jpg)"


async def test_the_journal_owner_wins_over_a_sending_intent():
    async def owners(ids):
        return {"X": "a/1.jpg"}

    sender = ImageSender(Scripted([("OKDuplicate", "X")]), "p", owners=owners)
    (b,) = await sender.send(_batch("b/1.jpg"), prior={"b/1.jpg": "sending"})
    assert b.status == Status.DUPLICATE and b.image_id == "X"
    assert b.reason == "the same image is already in the project (uploaded from a/1.jpg)"


def test_upload_records_a_reclassified_outcome_as_a_duplicate(tmp_path):
    from cvbulk.pipeline._upload_send import _demote
    from cvbulk.pipeline.journal import Journal, JournalEntry

    with Journal.open(tmp_path / "s.sqlite", job="upload", fingerprint={"root": "r"}) as journal:
        journal.record([JournalEntry("a/1.jpg", 1, 1, "h", "uploaded", "X"),
                        JournalEntry("b/1.jpg", 1, 1, "h", "uploaded", "X"),
                        JournalEntry("c/1.jpg", 1, 1, "h", "uploaded", "Y")])
        _demote(journal, [Reclassified("b/1.jpg", "X", "a/1.jpg"), Reclassified("c/1.jpg", "X", "a/1.jpg")])
        b, c = journal.get("b/1.jpg"), journal.get("c/1.jpg")
        assert (b.status, b.reason) == ("duplicate", "the same image is already in the project (uploaded from a/1.jpg)")
        assert c.status == "uploaded"  # its row names another image: left alone
        assert journal.owners(["X", "Y", "Z"]) == {"X": "a/1.jpg", "Y": "c/1.jpg"}
