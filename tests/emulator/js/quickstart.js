// Microsoft's Custom Vision JavaScript quickstart (image classification), unchanged except where its
// settings come from: the endpoint, keys and resource id are read from the environment (the
// quickstart has them pasted in), and the sample folder and poll interval are parameters.
// Run by tests/emulator/test_js_sdk.py against the cvbulk emulator; prints one JSON line at the end.
//   CV_ENDPOINT, CV_TRAINING_KEY, CV_PREDICTION_KEY, CV_PREDICTION_RESOURCE_ID, CV_SAMPLES, CV_POLL_MS
"use strict";

const util = require("util");
const fs = require("fs");
const TrainingApi = require("@azure/cognitiveservices-customvision-training");
const PredictionApi = require("@azure/cognitiveservices-customvision-prediction");
const msRest = require("@azure/ms-rest-js");

const trainingKey = process.env.CV_TRAINING_KEY;
const predictionKey = process.env.CV_PREDICTION_KEY;
const predictionResourceId = process.env.CV_PREDICTION_RESOURCE_ID;
const trainingEndpoint = process.env.CV_ENDPOINT;
const predictionEndpoint = process.env.CV_ENDPOINT;
const sampleDataRoot = process.env.CV_SAMPLES;
const pollMs = Number(process.env.CV_POLL_MS || 1000);

const publishIterationName = "classifyModel";
const setTimeoutPromise = util.promisify(setTimeout);

const credentials = new msRest.ApiKeyCredentials({ inHeader: { "Training-key": trainingKey } });
const trainer = new TrainingApi.TrainingAPIClient(credentials, trainingEndpoint);
const predictor_credentials = new msRest.ApiKeyCredentials({ inHeader: { "Prediction-key": predictionKey } });
const predictor = new PredictionApi.PredictionAPIClient(predictor_credentials, predictionEndpoint);

(async () => {
    console.log("Creating project...");
    const sampleProject = await trainer.createProject("Sample Project");
    const hemlockTag = await trainer.createTag(sampleProject.id, "Hemlock");
    const cherryTag = await trainer.createTag(sampleProject.id, "Japanese Cherry");

    console.log("Adding images...");
    let fileUploadPromises = [];

    const hemlockDir = `${sampleDataRoot}/Hemlock`;
    const hemlockFiles = fs.readdirSync(hemlockDir);
    hemlockFiles.forEach(file => {
        fileUploadPromises.push(trainer.createImagesFromData(sampleProject.id, fs.readFileSync(`${hemlockDir}/${file}`), { tagIds: [hemlockTag.id] }));
    });

    const cherryDir = `${sampleDataRoot}/Japanese_Cherry`;
    const japaneseCherryFiles = fs.readdirSync(cherryDir);
    japaneseCherryFiles.forEach(file => {
        fileUploadPromises.push(trainer.createImagesFromData(sampleProject.id, fs.readFileSync(`${cherryDir}/${file}`), { tagIds: [cherryTag.id] }));
    });

    const uploads = await Promise.all(fileUploadPromises);

    console.log("Training...");
    let trainingIteration = await trainer.trainProject(sampleProject.id);
    const statuses = [trainingIteration.status];

    // Wait for training to complete
    console.log("Training started...");
    while (trainingIteration.status == "Training") {
        console.log("Training status: " + trainingIteration.status);
        await setTimeoutPromise(pollMs, null);
        trainingIteration = await trainer.getIteration(sampleProject.id, trainingIteration.id);
        statuses.push(trainingIteration.status);
    }
    console.log("Training status: " + trainingIteration.status);

    // Publish the iteration to the end point
    await trainer.publishIteration(sampleProject.id, trainingIteration.id, publishIterationName, predictionResourceId);

    const testFile = fs.readFileSync(`${sampleDataRoot}/Test/test_image.jpg`);

    const results = await predictor.classifyImage(sampleProject.id, publishIterationName, testFile);

    // Show results
    console.log("Results:");
    results.predictions.forEach(predictedResult => {
        console.log(`\t ${predictedResult.tagName}: ${(predictedResult.probability * 100.0).toFixed(2)}%`);
    });

    console.log(JSON.stringify({
        projectId: sampleProject.id,
        uploaded: uploads.map(u => u.isBatchSuccessful),
        // ms-rest-js answers a number as { body: n }, on Azure as here
        taggedImageCount: (await trainer.getTaggedImageCount(sampleProject.id)).body,
        statuses: statuses,
        iterationId: trainingIteration.id,
        predictionId: results.id,
        predictions: results.predictions.map(p => ({ tagName: p.tagName, probability: p.probability })),
    }));
})().catch(err => {
    console.error(`quickstart failed: ${err.statusCode || ""} ${err.code || ""} ${err.message}`);
    process.exit(1);
});
