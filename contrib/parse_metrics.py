#!/usr/bin/env python3
"""Parses a Prometheus text exposition from stdin with the Prometheus project's own
Python parser (prometheus_client), written apart from smsgw's encoder, and prints one
JSON object per sample: {"family", "type", "name", "labels", "value"}. A text that does
not parse ends the script with an error."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = sample.value
            if math.isinf(value):
                value = "+Inf" if value > 0 else "-Inf"
            print(json.dumps({
                "family": family.name,
                "type": family.type,
                "name": sample.name,
                "labels": sample.labels,
                "value": value,
            }))


if __name__ == "__main__":
    main()
