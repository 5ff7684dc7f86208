"""Synthetic chest X-ray phantom studies (frontal + lateral DICOM, reports, labels).

For demos and tests only: the images are procedural drawings and say nothing
about real radiographs. Entry points: ``generate_study`` (in memory),
``generate_dataset`` (files + manifest), ``generate_sample_studies`` (bundled assets),
and the ``cxrclip phantom`` command (``training.phantoms.cli``).
"""
from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.findings import Finding, chexpert_14, make_finding, sample_findings
from training.phantoms.study import GENERATOR_VERSION, PhantomStudy, generate_study

__all__ = ["GENERATOR_VERSION", "Finding", "GenerateOptions", "PhantomStudy", "chexpert_14",
           "generate_dataset", "generate_study", "make_finding", "sample_findings"]
