"""Fakes that ship with the product: a recording SendGrid server for tests, benchmarks, demos."""
