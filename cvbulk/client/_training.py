"""TrainingClient: the Training v3.3 operations cvbulk uses, one method per operation of the spec."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import partial
from typing import Any

from ._base import BaseClient
from ._errors import TrainingFailedError, TrainingTimeoutError
from ._http import query, seg
from ._models import (
    ClassificationType,
    Domain,
    Export,
    ExportPlatform,
    Image,
    ImageCreateSummary,
    ImageFileCreateEntry,
    ImageIdCreateEntry,
    ImageMetadataUpdateSummary,
    ImagePrediction,
    ImageRegionCreateEntry,
    ImageRegionCreateSummary,
    ImageTagCreateSummary,
    ImageUrlCreateEntry,
    Iteration,
    IterationPerformance,
    Project,
    ProjectExport,
    Tag,
    TagType,
    TrainingType,
)
from ._multipart import ImageData, files_json
from ._text import parse_timestamp
from ._tiers import ApiGroup

__all__ = ["TrainingClient", "MAX_PAGE"]

MAX_PAGE = 256  # GetImages / GetTaggedImages / GetUntaggedImages: "take ... limited to 256"


def _batch(entries: Sequence[Any], tag_ids: Sequence[str], metadata: Mapping[str, str] | None) -> dict:
    body: dict[str, Any] = {"images": [entry.to_json() for entry in entries]}
    if tag_ids:
        body["tagIds"] = list(tag_ids)
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def _epoch(created: str | None) -> float:
    """Seconds since the epoch of a service timestamp ("2026-11-23T14:30:00.1234567Z"); 0 if unknown."""
    try:
        return parse_timestamp(created or "").timestamp()
    except ValueError:
        return 0.0


class TrainingClient(BaseClient):
    """Async client of Custom Vision Training (``{endpoint}/customvision/v3.3/training``)."""

    _service = "training"
    _key_header = "Training-Key"
    _default_api_version = "v3.3"

    async def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> Any:
        return await self._http.call(operation, method, path, **kwargs)

    # -- domains -----------------------------------------------------------------------------------------
    async def get_domains(self) -> list[Domain]:
        """Every domain (base model) a project can use (GetDomains)."""
        return [Domain.from_json(d) for d in await self._call("GetDomains", "GET", "/domains")]

    async def get_domain(self, domain_id: str) -> Domain:
        """One domain by id (GetDomain)."""
        return Domain.from_json(await self._call("GetDomain", "GET", f"/domains/{seg(domain_id)}"))

    # -- projects ----------------------------------------------------------------------------------------
    async def get_projects(self) -> list[Project]:
        """Every project of the resource (GetProjects)."""
        return [Project.from_json(p) for p in await self._call("GetProjects", "GET", "/projects")]

    async def get_project(self, project_id: str) -> Project:
        """One project by id (GetProject)."""
        return Project.from_json(await self._call("GetProject", "GET", f"/projects/{seg(project_id)}"))

    async def create_project(
        self,
        name: str,
        *,
        description: str | None = None,
        domain_id: str | None = None,
        classification_type: ClassificationType | None = None,
        target_export_platforms: Sequence[str] | None = None,
    ) -> Project:
        """Create a project (CreateProject); a retried attempt finds the project a lost answer created."""
        params = query(
            name=name,
            description=description,
            domainId=domain_id,
            classificationType=classification_type,
            targetExportPlatforms=list(target_export_platforms) if target_export_platforms else None,
        )
        # CreateProject is not idempotent: when an attempt's answer is lost (dropped connection, 5xx)
        # the service may have created the project anyway, so before sending again look for one of
        # this name created since the call began (30 s allowed for clock skew); none: send again.
        began = time.time() - 30.0

        async def created_meanwhile() -> dict | None:
            fresh = [p for p in await self.get_projects() if p.name == name and _epoch(p.created) >= began]
            return max(fresh, key=lambda p: _epoch(p.created)).to_json() if fresh else None

        return Project.from_json(
            await self._call("CreateProject", "POST", "/projects", params=params, recover=created_meanwhile)
        )

    async def update_project(self, project_id: str, project: Project) -> Project:
        """Change a project's name, description and settings (the fields the service lets one write)."""
        whole = project.to_json()
        body = await self._call(
            "UpdateProject", "PATCH", f"/projects/{seg(project_id)}",
            json_body={k: whole[k] for k in ("name", "description", "settings") if k in whole},
        )
        return Project.from_json(body)

    async def delete_project(self, project_id: str) -> None:
        """Delete a project and everything in it (DeleteProject)."""
        await self._call("DeleteProject", "DELETE", f"/projects/{seg(project_id)}")

    async def export_project(self, project_id: str) -> ProjectExport:
        """A token that ImportProject takes to copy the project, with its counts (ExportProject)."""
        body = await self._call("ExportProject", "GET", f"/projects/{seg(project_id)}/export")
        return ProjectExport.from_json(body)

    async def import_project(self, token: str, *, name: str | None = None) -> Project:
        """Create a project from an ExportProject token (ImportProject); poll get_project until its status is Succeeded."""
        params = query(token=token, name=name)
        return Project.from_json(await self._call("ImportProject", "POST", "/projects/import", params=params))

    # -- tags --------------------------------------------------------------------------------------------
    async def get_tags(self, project_id: str, *, iteration_id: str | None = None) -> list[Tag]:
        """The tags of a project, or of one iteration (GetTags)."""
        body = await self._call(
            "GetTags", "GET", f"/projects/{seg(project_id)}/tags", params=query(iterationId=iteration_id)
        )
        return [Tag.from_json(t) for t in body]

    async def get_tag(self, project_id: str, tag_id: str, *, iteration_id: str | None = None) -> Tag:
        """One tag (GetTag)."""
        body = await self._call(
            "GetTag", "GET", f"/projects/{seg(project_id)}/tags/{seg(tag_id)}",
            params=query(iterationId=iteration_id),
        )
        return Tag.from_json(body)

    async def create_tag(
        self, project_id: str, name: str, *, description: str | None = None, type: TagType | None = None
    ) -> Tag:
        """Create a tag (CreateTag); ``type`` is Regular (default), Negative or GeneralProduct."""
        params = query(name=name, description=description, type=type)
        body = await self._call("CreateTag", "POST", f"/projects/{seg(project_id)}/tags", params=params)
        return Tag.from_json(body)

    async def update_tag(
        self,
        project_id: str,
        tag_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        type: TagType | None = None,
    ) -> Tag:
        """PATCH a tag. The spec's Tag requires name, description and type: fields not given are read
        from the current tag first, so only what the caller names changes."""
        if name is None or description is None or type is None:
            current = await self.get_tag(project_id, tag_id)
            name = current.name if name is None else name
            description = (current.description or "") if description is None else description
            type = current.type if type is None else type
        patch = {"name": name, "description": description, "type": type}
        body = await self._call(
            "UpdateTag", "PATCH", f"/projects/{seg(project_id)}/tags/{seg(tag_id)}",
            json_body={k: v for k, v in patch.items() if v is not None},
        )
        return Tag.from_json(body)

    async def delete_tag(self, project_id: str, tag_id: str) -> None:
        """Delete a tag; it leaves the images that carried it (DeleteTag)."""
        await self._call(
            "DeleteTag", "DELETE", f"/projects/{seg(project_id)}/tags/{seg(tag_id)}"
        )

    # -- creating images ---------------------------------------------------------------------------------
    async def create_images_from_data(
        self,
        project_id: str,
        images: Sequence[tuple[str, ImageData]],
        *,
        tag_ids: Sequence[str] = (),
    ) -> ImageCreateSummary:
        """Upload images, one multipart ``imageData`` part per (file name, bytes or ``ImageBody``).

        A body is read as the request is written (and again on a retry), never held whole in memory.
        The tags apply to every image. 200 and 207 both return the summary: check each result's status.
        """
        body = await self._call(
            "CreateImagesFromData", "POST", f"/projects/{seg(project_id)}/images",
            params=query(tagIds=list(tag_ids)), images=images
        )
        return ImageCreateSummary.from_json(body)

    async def create_images_from_files(
        self,
        project_id: str,
        images: Sequence[ImageFileCreateEntry],
        *,
        tag_ids: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> ImageCreateSummary:
        """Upload images with per-image tags and regions (JSON, contents in base64).

        An entry's ``contents`` are bytes or an ``ImageBody``; the JSON is streamed, base64 encoded on the fly.
        """
        if all(isinstance(e.contents, (bytes, bytearray)) for e in images):
            # in memory already: encoded once, every attempt resends the same bytes
            body = await self._call(
                "CreateImagesFromFiles", "POST", f"/projects/{seg(project_id)}/images/files",
                json_body=_batch(images, tag_ids, metadata)
            )
        else:
            body = await self._call(
                "CreateImagesFromFiles", "POST", f"/projects/{seg(project_id)}/images/files",
                payload=partial(files_json, images, tag_ids, metadata),
            )
        return ImageCreateSummary.from_json(body)

    async def create_images_from_urls(
        self,
        project_id: str,
        images: Sequence[ImageUrlCreateEntry],
        *,
        tag_ids: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> ImageCreateSummary:
        """Add images the service downloads from URLs, with per-image tags and regions (CreateImagesFromUrls)."""
        body = await self._call(
            "CreateImagesFromUrls", "POST", f"/projects/{seg(project_id)}/images/urls",
            json_body=_batch(images, tag_ids, metadata)
        )
        return ImageCreateSummary.from_json(body)

    async def create_image_regions(
        self, project_id: str, regions: Sequence[ImageRegionCreateEntry]
    ) -> ImageRegionCreateSummary:
        """Add regions to stored images (CreateImageRegions, at most 64 per call)."""
        body = await self._call(
            "CreateImageRegions", "POST", f"/projects/{seg(project_id)}/images/regions",
            json_body={"regions": [r.to_json() for r in regions]}
        )
        return ImageRegionCreateSummary.from_json(body)

    async def create_image_tags(
        self, project_id: str, pairs: Sequence[tuple[str, str]]
    ) -> ImageTagCreateSummary:
        """Tag existing images: ``pairs`` of (image_id, tag_id)."""
        body = await self._call(
            "CreateImageTags", "POST", f"/projects/{seg(project_id)}/images/tags",
            json_body={"tags": [{"imageId": image_id, "tagId": tag_id} for image_id, tag_id in pairs]}
        )
        return ImageTagCreateSummary.from_json(body)

    async def delete_image_tags(
        self, project_id: str, image_ids: Sequence[str], tag_ids: Sequence[str]
    ) -> None:
        """Remove tags from images (DeleteImageTags: at most 64 images and 20 tags per call)."""
        await self._call(
            "DeleteImageTags", "DELETE", f"/projects/{seg(project_id)}/images/tags",
            params=query(imageIds=list(image_ids), tagIds=list(tag_ids))
        )

    async def create_images_from_predictions(
        self,
        project_id: str,
        images: Sequence[ImageIdCreateEntry],
        *,
        tag_ids: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> ImageCreateSummary:
        """Add images that were sent to the prediction endpoint, by their prediction image id
        (CreateImagesFromPredictions: at most 64 images and 20 tags per call)."""
        body = await self._call(
            "CreateImagesFromPredictions", "POST", f"/projects/{seg(project_id)}/images/predictions",
            json_body=_batch(images, tag_ids, metadata),
        )
        return ImageCreateSummary.from_json(body)

    async def delete_image_regions(self, project_id: str, region_ids: Sequence[str]) -> None:
        """Delete regions by id (DeleteImageRegions: at most 64 per call)."""
        if not region_ids:
            raise ValueError("name at least one region to delete")
        await self._call(
            "DeleteImageRegions", "DELETE", f"/projects/{seg(project_id)}/images/regions",
            params=query(regionIds=list(region_ids)),
        )

    async def update_image_metadata(
        self, project_id: str, image_ids: Sequence[str], metadata: Mapping[str, str]
    ) -> ImageMetadataUpdateSummary:
        """Set metadata key/values on stored images (UpdateImageMetadata; at most 64 images per call, 50 pairs
        per image, keys up to 256 and values up to 512 characters). 200 and 207 both return the summary:
        check each entry's status."""
        if not image_ids:
            raise ValueError("name at least one image")
        body = await self._call(
            "UpdateImageMetadata", "POST", f"/projects/{seg(project_id)}/images/metadata",
            params=query(imageIds=list(image_ids)), json_body=dict(metadata),
        )
        return ImageMetadataUpdateSummary.from_json(body)

    async def delete_prediction(self, project_id: str, prediction_ids: Sequence[str]) -> None:
        """Delete stored predictions (DeletePrediction: at most 64 per call)."""
        if not prediction_ids:
            raise ValueError("name at least one prediction")
        await self._call(
            "DeletePrediction", "DELETE", f"/projects/{seg(project_id)}/predictions",
            params=query(ids=list(prediction_ids)),
        )

    # -- reading images ----------------------------------------------------------------------------------
    async def get_images(
        self,
        project_id: str,
        *,
        tagging_status: str | None = None,
        tag_ids: Sequence[str] | None = None,
        order_by: str | None = None,
        take: int = 50,
        skip: int = 0,
        iteration_id: str | None = None,
        metadata_filter: str | None = None,
    ) -> list[Image]:
        """One page of a project's images (GetImages: ``take`` at most 256); ``metadata_filter`` is the $filter expression."""
        params = query(
            iterationId=iteration_id, tagIds=list(tag_ids) if tag_ids else None,
            taggingStatus=tagging_status, orderBy=order_by, take=take, skip=skip,
        )
        if metadata_filter is not None:
            params["$filter"] = metadata_filter
        body = await self._call("GetImages", "GET", f"/projects/{seg(project_id)}/images", params=params)
        return [Image.from_json(i) for i in body]

    async def get_tagged_images(
        self,
        project_id: str,
        *,
        tag_ids: Sequence[str] | None = None,
        order_by: str | None = None,
        take: int = 50,
        skip: int = 0,
        iteration_id: str | None = None,
    ) -> list[Image]:
        """One page of the images that carry a tag (GetTaggedImages)."""
        params = query(
            iterationId=iteration_id, tagIds=list(tag_ids) if tag_ids else None,
            orderBy=order_by, take=take, skip=skip,
        )
        body = await self._call(
            "GetTaggedImages", "GET", f"/projects/{seg(project_id)}/images/tagged", params=params
        )
        return [Image.from_json(i) for i in body]

    async def get_untagged_images(
        self,
        project_id: str,
        *,
        order_by: str | None = None,
        take: int = 50,
        skip: int = 0,
        iteration_id: str | None = None,
    ) -> list[Image]:
        """One page of the images without a tag (GetUntaggedImages)."""
        params = query(iterationId=iteration_id, orderBy=order_by, take=take, skip=skip)
        body = await self._call(
            "GetUntaggedImages", "GET", f"/projects/{seg(project_id)}/images/untagged", params=params
        )
        return [Image.from_json(i) for i in body]

    async def get_image_count(
        self,
        project_id: str,
        *,
        tagging_status: str | None = None,
        tag_ids: Sequence[str] | None = None,
        iteration_id: str | None = None,
        metadata_filter: str | None = None,
    ) -> int:
        """How many images match (GetImageCount)."""
        params = query(
            iterationId=iteration_id, taggingStatus=tagging_status,
            tagIds=list(tag_ids) if tag_ids else None,
        )
        if metadata_filter is not None:
            params["$filter"] = metadata_filter
        return int(
            await self._call("GetImageCount", "GET", f"/projects/{seg(project_id)}/images/count", params=params)
        )

    async def get_tagged_image_count(
        self, project_id: str, *, tag_ids: Sequence[str] | None = None, iteration_id: str | None = None
    ) -> int:
        """How many images carry any of the tags (GetTaggedImageCount)."""
        params = query(iterationId=iteration_id, tagIds=list(tag_ids) if tag_ids else None)
        return int(await self._call(
            "GetTaggedImageCount", "GET", f"/projects/{seg(project_id)}/images/tagged/count", params=params
        ))

    async def get_untagged_image_count(self, project_id: str, *, iteration_id: str | None = None) -> int:
        """How many images carry no tag (GetUntaggedImageCount)."""
        return int(await self._call(
            "GetUntaggedImageCount", "GET", f"/projects/{seg(project_id)}/images/untagged/count",
            params=query(iterationId=iteration_id),
        ))

    async def iter_images(
        self,
        project_id: str,
        *,
        tagging_status: str = "All",
        page_size: int = MAX_PAGE,
        order_by: str | None = None,
        iteration_id: str | None = None,
    ) -> AsyncIterator[Image]:
        """Every image of the project, page by page (take/skip) until a short page."""
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
        skip = 0
        while True:
            page = await self.get_images(
                project_id, tagging_status=tagging_status, order_by=order_by, take=page_size, skip=skip,
                iteration_id=iteration_id,
            )
            for image in page:
                yield image
            if len(page) < page_size:
                return
            skip += len(page)

    async def get_images_by_ids(
        self, project_id: str, image_ids: Sequence[str], *, iteration_id: str | None = None
    ) -> list[Image]:
        """Images by id (GetImagesByIds: at most 256 ids per call)."""
        params = query(imageIds=list(image_ids), iterationId=iteration_id)
        body = await self._call("GetImagesByIds", "GET", f"/projects/{seg(project_id)}/images/id", params=params)
        return [Image.from_json(i) for i in body]

    async def delete_images(
        self,
        project_id: str,
        image_ids: Sequence[str] | None = None,
        *,
        all_images: bool = False,
        all_iterations: bool = False,
    ) -> None:
        """Delete images by id (at most 256 per call), or every image with ``all_images=True`` (DeleteImages)."""
        if not image_ids and not all_images:
            raise ValueError("name the images to delete, or pass all_images=True")
        params = query(
            imageIds=list(image_ids) if image_ids else None,
            allImages=True if all_images else None,
            allIterations=True if all_iterations else None,
        )
        await self._call(
            "DeleteImages", "DELETE", f"/projects/{seg(project_id)}/images", params=params
        )

    # -- training and iterations -------------------------------------------------------------------------
    async def train_project(
        self,
        project_id: str,
        *,
        training_type: TrainingType | None = None,
        reserved_budget_in_hours: int | None = None,
        force_train: bool = False,
        notification_email_address: str | None = None,
        selected_tags: Sequence[str] | None = None,
    ) -> Iteration:
        """Queue training; returns the new iteration (poll get_iteration for its status)."""
        params = query(
            trainingType=training_type,
            reservedBudgetInHours=reserved_budget_in_hours,
            forceTrain=True if force_train else None,
            notificationEmailAddress=notification_email_address,
        )
        body = await self._call(
            "TrainProject", "POST", f"/projects/{seg(project_id)}/train", params=params,
            json_body={"selectedTags": list(selected_tags)} if selected_tags else None,
            group=ApiGroup.TRAIN_PROJECT,
        )
        return Iteration.from_json(body)

    async def get_iterations(self, project_id: str) -> list[Iteration]:
        """Every iteration of a project (GetIterations)."""
        body = await self._call("GetIterations", "GET", f"/projects/{seg(project_id)}/iterations")
        return [Iteration.from_json(i) for i in body]

    async def get_iteration(self, project_id: str, iteration_id: str) -> Iteration:
        """One iteration; its ``status`` says whether training is done (GetIteration)."""
        body = await self._call(
            "GetIteration", "GET", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}"
        )
        return Iteration.from_json(body)

    async def update_iteration(self, project_id: str, iteration_id: str, *, name: str) -> Iteration:
        """Rename an iteration (UpdateIteration)."""
        body = await self._call(
            "UpdateIteration", "PATCH", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}",
            json_body={"name": name},
        )
        return Iteration.from_json(body)

    async def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        """Delete an iteration (DeleteIteration); a published one must be unpublished first."""
        await self._call(
            "DeleteIteration", "DELETE", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}"
        )

    async def get_iteration_performance(
        self,
        project_id: str,
        iteration_id: str,
        *,
        threshold: float | None = None,
        overlap_threshold: float | None = None,
    ) -> IterationPerformance:
        """Precision and recall of a trained iteration, overall and per tag (GetIterationPerformance)."""
        body = await self._call(
            "GetIterationPerformance", "GET",
            f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}/performance",
            params=query(threshold=threshold, overlapThreshold=overlap_threshold),
        )
        return IterationPerformance.from_json(body)

    async def publish_iteration(
        self,
        project_id: str,
        iteration_id: str,
        publish_name: str,
        prediction_id: str,
        *,
        overwrite: bool | None = None,
    ) -> bool:
        """Publish under ``publish_name`` to the prediction resource ``prediction_id`` (its resource ID)."""
        body = await self._call(
            "PublishIteration", "POST",
            f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}/publish",
            params=query(publishName=publish_name, predictionId=prediction_id, overwrite=overwrite),
        )
        return bool(body)

    async def wait_for_iteration(
        self,
        project_id: str,
        iteration_id: str,
        *,
        poll: float = 5.0,
        timeout: float | None = 3600.0,
        on_poll: Callable[[Iteration], None] | None = None,
    ) -> Iteration:
        """Poll an iteration until its training is done; returns it once Completed.

        The pause between checks starts at 0.2 s and grows by half up to ``poll`` seconds. ``on_poll`` is
        called with each state read (the first one too), e.g. to show the status. Raises
        ``TrainingFailedError`` when the iteration ends Failed, and ``TrainingTimeoutError`` (a subclass)
        when it is still training after ``timeout`` seconds (None: no limit); training goes on in the
        service either way. Waits use the client's ``retry.sleep`` and ``retry.clock``.
        """
        if poll <= 0:
            raise ValueError("poll must be a positive number of seconds")
        sleep, clock = self.retry.sleep, self.retry.clock
        deadline = None if timeout is None else clock() + timeout
        pause = min(0.2, poll)
        while True:
            iteration = await self.get_iteration(project_id, iteration_id)
            if on_poll is not None:
                on_poll(iteration)
            status = str(iteration.status).lower()
            if status == "completed":
                return iteration
            if status == "failed":
                raise TrainingFailedError(
                    f"training of iteration {iteration.name!r} (id {iteration.id}) failed",
                    iteration=iteration, operation="GetIteration",
                )
            if deadline is not None and clock() + pause > deadline:
                raise TrainingTimeoutError(
                    f"iteration {iteration.name!r} (id {iteration.id}) still {iteration.status} after "
                    f"{timeout:g} s; training goes on in the service",
                    iteration=iteration, operation="GetIteration",
                )
            await sleep(pause)
            pause = min(pause * 1.5, poll)

    async def export_iteration(
        self, project_id: str, iteration_id: str, platform: ExportPlatform, *, flavor: str | None = None
    ) -> Export:
        """Start exporting a trained iteration for a platform (ExportIteration); poll get_exports until Done."""
        body = await self._call(
            "ExportIteration", "POST", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}/export",
            params=query(platform=platform, flavor=flavor),
        )
        return Export.from_json(body)

    async def get_exports(self, project_id: str, iteration_id: str) -> list[Export]:
        """The exports of an iteration and their status (GetExports)."""
        body = await self._call(
            "GetExports", "GET", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}/export"
        )
        return [Export.from_json(e) for e in body]

    async def unpublish_iteration(self, project_id: str, iteration_id: str) -> None:
        """Withdraw an iteration's published name (UnpublishIteration)."""
        await self._call(
            "UnpublishIteration", "DELETE",
            f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}/publish"
        )

    # -- quick test --------------------------------------------------------------------------------------
    async def quick_test_image(
        self,
        project_id: str,
        image: ImageData,
        *,
        iteration_id: str | None = None,
        store: bool | None = None,
        name: str = "image",
    ) -> ImagePrediction:
        """Score an image with an iteration, without publishing it (QuickTestImage).

        ``image`` is bytes or an ``ImageBody`` (``FileBody(path, size)`` streams it from disk); ``name`` is
        the multipart file name. ``iteration_id``: the default iteration when None; ``store``: keep the
        image in the project's prediction results (the service's default when None).
        """
        body = await self._call(
            "QuickTestImage", "POST", f"/projects/{seg(project_id)}/quicktest/image",
            params=query(iterationId=iteration_id, store=store), images=[(name, image)],
        )
        return ImagePrediction.from_json(body)

    async def quick_test_image_url(
        self, project_id: str, url: str, *, iteration_id: str | None = None, store: bool | None = None
    ) -> ImagePrediction:
        """Score an image at a URL with an iteration, without publishing it (QuickTestImageUrl)."""
        body = await self._call(
            "QuickTestImageUrl", "POST", f"/projects/{seg(project_id)}/quicktest/url",
            params=query(iterationId=iteration_id, store=store), json_body={"url": url},
        )
        return ImagePrediction.from_json(body)
