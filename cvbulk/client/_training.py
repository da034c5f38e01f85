"""TrainingClient: the Training v3.3 operations cvbulk uses, one method per operation of the spec."""

from __future__ import annotations

import calendar
import time
from functools import partial

from typing import Any, AsyncIterator, Mapping, Sequence

from ._base import BaseClient
from ._http import query, seg
from ._models import (
    Domain,
    Image,
    ImageCreateSummary,
    ImageFileCreateEntry,
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
)
from ._multipart import ImageData, files_json
from ._ratelimit import ApiGroup

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
        return calendar.timegm(time.strptime((created or "")[:19], "%Y-%m-%dT%H:%M:%S"))
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
        return [Domain.from_json(d) for d in await self._call("GetDomains", "GET", "/domains")]

    async def get_domain(self, domain_id: str) -> Domain:
        return Domain.from_json(await self._call("GetDomain", "GET", f"/domains/{seg(domain_id)}"))

    # -- projects ----------------------------------------------------------------------------------------
    async def get_projects(self) -> list[Project]:
        return [Project.from_json(p) for p in await self._call("GetProjects", "GET", "/projects")]

    async def get_project(self, project_id: str) -> Project:
        return Project.from_json(await self._call("GetProject", "GET", f"/projects/{seg(project_id)}"))

    async def create_project(
        self,
        name: str,
        *,
        description: str | None = None,
        domain_id: str | None = None,
        classification_type: str | None = None,
        target_export_platforms: Sequence[str] | None = None,
    ) -> Project:
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
        body = await self._call(
            "UpdateProject", "PATCH", f"/projects/{seg(project_id)}", json_body=project.to_json()
        )
        return Project.from_json(body)

    async def delete_project(self, project_id: str) -> None:
        await self._call("DeleteProject", "DELETE", f"/projects/{seg(project_id)}")

    async def export_project(self, project_id: str) -> ProjectExport:
        body = await self._call("ExportProject", "GET", f"/projects/{seg(project_id)}/export")
        return ProjectExport.from_json(body)

    async def import_project(self, token: str, *, name: str | None = None) -> Project:
        params = query(token=token, name=name)
        return Project.from_json(await self._call("ImportProject", "POST", "/projects/import", params=params))

    # -- tags --------------------------------------------------------------------------------------------
    async def get_tags(self, project_id: str, *, iteration_id: str | None = None) -> list[Tag]:
        body = await self._call(
            "GetTags", "GET", f"/projects/{seg(project_id)}/tags", params=query(iterationId=iteration_id)
        )
        return [Tag.from_json(t) for t in body]

    async def get_tag(self, project_id: str, tag_id: str, *, iteration_id: str | None = None) -> Tag:
        body = await self._call(
            "GetTag", "GET", f"/projects/{seg(project_id)}/tags/{seg(tag_id)}",
            params=query(iterationId=iteration_id),
        )
        return Tag.from_json(body)

    async def create_tag(
        self, project_id: str, name: str, *, description: str | None = None, type: str | None = None
    ) -> Tag:
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
        type: str | None = None,
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
        body = await self._call(
            "CreateImagesFromUrls", "POST", f"/projects/{seg(project_id)}/images/urls",
            json_body=_batch(images, tag_ids, metadata)
        )
        return ImageCreateSummary.from_json(body)

    async def create_image_regions(
        self, project_id: str, regions: Sequence[ImageRegionCreateEntry]
    ) -> ImageRegionCreateSummary:
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
        await self._call(
            "DeleteImageTags", "DELETE", f"/projects/{seg(project_id)}/images/tags",
            params=query(imageIds=list(image_ids), tagIds=list(tag_ids))
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
        params = query(iterationId=iteration_id, tagIds=list(tag_ids) if tag_ids else None)
        return int(await self._call(
            "GetTaggedImageCount", "GET", f"/projects/{seg(project_id)}/images/tagged/count", params=params
        ))

    async def get_untagged_image_count(self, project_id: str, *, iteration_id: str | None = None) -> int:
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
        training_type: str | None = None,
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
        body = await self._call("GetIterations", "GET", f"/projects/{seg(project_id)}/iterations")
        return [Iteration.from_json(i) for i in body]

    async def get_iteration(self, project_id: str, iteration_id: str) -> Iteration:
        body = await self._call(
            "GetIteration", "GET", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}"
        )
        return Iteration.from_json(body)

    async def update_iteration(self, project_id: str, iteration_id: str, *, name: str) -> Iteration:
        body = await self._call(
            "UpdateIteration", "PATCH", f"/projects/{seg(project_id)}/iterations/{seg(iteration_id)}",
            json_body={"name": name},
        )
        return Iteration.from_json(body)

    async def delete_iteration(self, project_id: str, iteration_id: str) -> None:
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

    async def unpublish_iteration(self, project_id: str, iteration_id: str) -> None:
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
        body = await self._call(
            "QuickTestImage", "POST", f"/projects/{seg(project_id)}/quicktest/image",
            params=query(iterationId=iteration_id, store=store), images=[(name, image)],
        )
        return ImagePrediction.from_json(body)

    async def quick_test_image_url(
        self, project_id: str, url: str, *, iteration_id: str | None = None, store: bool | None = None
    ) -> ImagePrediction:
        body = await self._call(
            "QuickTestImageUrl", "POST", f"/projects/{seg(project_id)}/quicktest/url",
            params=query(iterationId=iteration_id, store=store), json_body={"url": url},
        )
        return ImagePrediction.from_json(body)
