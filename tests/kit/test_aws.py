"""The kit's one botocore session and its plain-dict loading of botocore's data files."""

from __future__ import annotations

from botocore.loaders import Loader

from risingstars.kit import aws


def test_every_client_shares_one_session_with_the_plain_loader() -> None:
    assert aws.session() is aws.session()
    loader = aws.session().get_component("data_loader")
    assert isinstance(loader.file_loader, aws.PlainJSONFiles)


def test_models_load_the_same_as_with_botocores_own_loader() -> None:
    # Fresh loaders: the session's cached models are edited in place by clients' handlers.
    ours, theirs = Loader(file_loader=aws.PlainJSONFiles()), Loader()
    for service in ("s3", "sqs"):
        model = ours.load_service_model(service, "service-2")
        reference = theirs.load_service_model(service, "service-2")
        assert type(model) is dict and type(model["shapes"]) is dict
        assert model == reference and list(model["shapes"]) == list(reference["shapes"])
    assert ours.load_data("endpoints") == theirs.load_data("endpoints")
    assert ours.load_data("partitions") == theirs.load_data("partitions")
