#!/usr/bin/env bash
# Build the image (workers and launcher), then the Flex Template spec of each
# pipeline, from the repository root:
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket templates/build_template.sh
set -euo pipefail
PROJECT="${PROJECT:?set PROJECT}"
REGION="${REGION:?set REGION}"
BUCKET="${BUCKET:?set BUCKET}"
REPO="${REPO:-beamtrain}"
IMAGE="${REGION}-docker.pkg.dev/${PROJECT}/${REPO}/beamtrain:2.77.0"

gcloud artifacts repositories describe "$REPO" --project="$PROJECT" --location="$REGION" >/dev/null 2>&1 ||
  gcloud artifacts repositories create "$REPO" --project="$PROJECT" --location="$REGION" \
    --repository-format=docker
gcloud builds submit --project="$PROJECT" --region="$REGION" \
  --config=/dev/stdin . <<CLOUDBUILD
steps:
- name: gcr.io/cloud-builders/docker
  args: [build, -f, templates/Dockerfile, -t, "${IMAGE}", .]
images: ["${IMAGE}"]
CLOUDBUILD

for pipeline in text images multimodal; do
  gcloud dataflow flex-template build "gs://${BUCKET}/templates/beamtrain-${pipeline}.json" \
    --project="$PROJECT" \
    --image="$IMAGE" \
    --sdk-language=PYTHON \
    --metadata-file="templates/${pipeline}/metadata.json" \
    --env="BEAMTRAIN_PIPELINE=${pipeline}"
done
echo "template: gs://${BUCKET}/templates/beamtrain-text.json"
