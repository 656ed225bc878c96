"""A checkpoint says how its tokens are chosen in generation_config.json, as transformers writes it."""

import pytest
from transformers import GenerationConfig

from infitool_edit.agent.headless import make_backend
from infitool_edit.model.checkpoint import CheckpointError, save_checkpoint
from infitool_edit.model.sampling import Decoding
from infitool_edit.agent.ssm import random_tiny_model


def test_decoding_reads_what_transformers_writes(tmp_path):
    assert Decoding.from_folder(tmp_path) == Decoding(1.0, 1.0)  # no file: plain sampling
    GenerationConfig(do_sample=True, temperature=0.4, top_p=0.85).save_pretrained(tmp_path)
    assert Decoding.from_folder(tmp_path) == Decoding(0.4, 0.85)
    GenerationConfig(do_sample=False).save_pretrained(tmp_path)
    assert Decoding.from_folder(tmp_path) == Decoding(0.0, 1.0)  # greedy
    GenerationConfig(do_sample=False, copy_prior=0.9).save_pretrained(tmp_path)  # ours, kept as it is
    assert Decoding.from_folder(tmp_path) == Decoding(0.0, 1.0, copy_prior=0.9)
    GenerationConfig(do_sample=False, min_address_p=0.5).save_pretrained(tmp_path)  # ours too
    assert Decoding.from_folder(tmp_path) == Decoding(0.0, 1.0, min_address_p=0.5)
    GenerationConfig(do_sample=False, min_plan_p=0.8).save_pretrained(tmp_path)
    assert Decoding.from_folder(tmp_path) == Decoding(0.0, 1.0, min_plan_p=0.8)


@pytest.mark.parametrize("text", ["[1, 2]", "{\"temperature\": -1}", "{\"top_p\": 0}", "{\"temperature\": \"hot\"}",
                                  "{\"temperature\": NaN}", "not json", "{\"copy_prior\": 2}",
                                  "{\"copy_prior\": NaN}", "{\"min_address_p\": -0.1}", "{\"min_plan_p\": 1.5}"])
def test_a_bad_generation_config_is_one_line_naming_the_file(tmp_path, text):
    (tmp_path / "generation_config.json").write_text(text)
    with pytest.raises(CheckpointError) as error:
        Decoding.from_folder(tmp_path)
    assert "generation_config.json" in str(error.value) and "\n" not in str(error.value)


def test_the_backend_of_a_folder_decodes_as_its_generation_config_says(tmp_path):
    save_checkpoint(random_tiny_model(), tmp_path)
    GenerationConfig(do_sample=True, temperature=0.3, top_p=0.9).save_pretrained(tmp_path)
    backend = make_backend(model=tmp_path)
    assert (backend.temperature, backend.top_p) == (0.3, 0.9) and backend.copy_prior is None
    GenerationConfig(do_sample=False, copy_prior=0.5).save_pretrained(tmp_path)
    assert make_backend(model=tmp_path).copy_prior.strength == 0.5
    GenerationConfig(do_sample=False, min_address_p=0.3, min_plan_p=0.7).save_pretrained(tmp_path)
    backend = make_backend(model=tmp_path)
    assert (backend.min_address_p, backend.min_plan_p) == (0.3, 0.7)
    GenerationConfig(do_sample=False, min_address_p=0.4).save_pretrained(tmp_path)
    assert make_backend(model=tmp_path).min_address_p == 0.4
