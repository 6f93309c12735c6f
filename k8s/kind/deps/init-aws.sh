#!/bin/sh
# Runs once LocalStack is ready: the bucket and queues the chart's base values point at.
# maxReceiveCount equals the processor's MAX_ATTEMPTS (5).
set -eu
awslocal s3 mb s3://rising-stars-videos
awslocal sqs create-queue --queue-name rising-stars-jobs-dlq
awslocal sqs create-queue --queue-name rising-stars-jobs --attributes '{
  "VisibilityTimeout": "120",
  "RedrivePolicy": "{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:000000000000:rising-stars-jobs-dlq\",\"maxReceiveCount\":\"5\"}"
}'
awslocal sqs create-queue --queue-name rising-stars-events
