// Beyond the quickstart: the JavaScript SDK on the operations added last (export, artifacts,
// suggestions, region proposals, image performances) against the cvbulk emulator.
// Same environment as quickstart.js; prints one JSON line at the end.
"use strict";

const fs = require("fs");
const TrainingApi = require("@azure/cognitiveservices-customvision-training");
const msRest = require("@azure/ms-rest-js");

const compactDomain = "0732100f-1a38-4e49-a514-c9b44c697ab5"; // General (compact): exportable
const root = process.env.CV_SAMPLES;
const pollMs = Number(process.env.CV_POLL_MS || 1000);
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const trainer = new TrainingApi.TrainingAPIClient(
    new msRest.ApiKeyCredentials({ inHeader: { "Training-key": process.env.CV_TRAINING_KEY } }), process.env.CV_ENDPOINT);

async function readAll(stream) {
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    return Buffer.concat(chunks);
}

(async () => {
    const project = await trainer.createProject("JS operations", { domainId: compactDomain, classificationType: "Multiclass" });
    const tags = {};
    for (const [folder, name] of [["Hemlock", "Hemlock"], ["Japanese_Cherry", "Japanese Cherry"]]) {
        tags[name] = (await trainer.createTag(project.id, name)).id;
        const files = fs.readdirSync(`${root}/${folder}`).sort();
        const images = files.map(f => ({ name: f, contents: fs.readFileSync(`${root}/${folder}/${f}`) }));
        await trainer.createImagesFromFiles(project.id, { images: images, tagIds: [tags[name]] });
    }
    const untagged = (await trainer.createImagesFromData(project.id, fs.readFileSync(`${root}/Test/test_image.jpg`))).images[0].image;

    let iteration = await trainer.trainProject(project.id);
    while (iteration.status == "Training") {
        await sleep(pollMs);
        iteration = await trainer.getIteration(project.id, iteration.id);
    }

    const started = await trainer.exportIteration(project.id, iteration.id, "TensorFlow", { flavor: "TensorFlowLite" });
    let exports = await trainer.getExports(project.id, iteration.id);
    while (exports[0].status == "Exporting") {
        await sleep(pollMs);
        exports = await trainer.getExports(project.id, iteration.id);
    }
    const artifact = await trainer.getArtifact(project.id, exports[0].downloadUri);
    const zip = await readAll(artifact.readableStreamBody);

    const suggestions = await trainer.suggestTagsAndRegions(project.id, iteration.id, [untagged.id]);
    const counts = await trainer.querySuggestedImageCount(project.id, iteration.id, { tagIds: [tags["Hemlock"]], threshold: 0.5 });
    const suggested = await trainer.querySuggestedImages(project.id, iteration.id, { tagIds: [], threshold: 0.0, maxCount: 10 });
    const proposals = await trainer.getImageRegionProposals(project.id, untagged.id);
    const performances = await trainer.getImagePerformances(project.id, iteration.id);
    const performanceCount = (await trainer.getImagePerformanceCount(project.id, iteration.id)).body;

    const best = suggestions[0].predictions.reduce((a, b) => (a.probability >= b.probability ? a : b));
    console.log(JSON.stringify({
        exportStarted: started.status,
        export: { status: exports[0].status, platform: exports[0].platform, flavor: exports[0].flavor },
        zipMagic: zip.subarray(0, 2).toString("latin1"),
        zipBytes: zip.length,
        suggestedTag: best.tagName,
        suggestionId: suggestions[0].id,
        untaggedId: untagged.id,
        hemlockCount: counts[tags["Hemlock"]],
        suggestedIds: suggested.results.map(r => r.id),
        proposals: proposals.proposals.length,
        performances: performances.length,
        performanceCount: performanceCount,
    }));
})().catch(err => {
    console.error(`operations failed: ${err.statusCode || ""} ${err.code || ""} ${err.message}`);
    process.exit(1);
});
