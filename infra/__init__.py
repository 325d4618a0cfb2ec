"""Deployment aids: the local Kafka-protocol broker launcher (``python -m infra.broker``)."""
