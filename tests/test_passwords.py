"""Password storage (Argon2id with named parameters) and the password policy validators."""

import subprocess
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    PBKDF2PasswordHasher,
    check_password,
    get_hasher,
    identify_hasher,
    make_password,
)
from django.contrib.auth.password_validation import (
    get_default_password_validators,
    password_validators_help_texts,
    validate_password,
)
from django.core.exceptions import ValidationError

from accounts.hashers import ConfiguredArgon2PasswordHasher
from accounts.models import User
from accounts.validators import MaximumLengthValidator
from tests.support.processes import clean_env, run_in_project

PASSPHRASE = "correct horse battery staple"


def error_codes(password, user=None) -> set[str]:
    with pytest.raises(ValidationError) as excinfo:
        validate_password(password, user=user)
    return {error.code for error in excinfo.value.error_list}


def phrase_of_length(length: int) -> str:
    """A non-common, non-personal passphrase of exactly ``length`` characters."""
    words = "quartz lantern meadow velvet orbit thistle canyon ember willow saffron "
    return (words * (length // len(words) + 1))[:length]


# --- Hashing ----------------------------------------------------------------------
# The suite hashes at Argon2's lowest cost (tests/support/hashers.py); the tests about the
# configured parameters and the upgrades they cause are marked real_argon2.


@pytest.mark.real_argon2
def test_argon2_parameters_are_named_in_settings():
    assert django_settings.ARGON2_TIME_COST == 2
    assert django_settings.ARGON2_MEMORY_COST_KIB == 19456
    assert django_settings.ARGON2_PARALLELISM == 1


@pytest.mark.real_argon2
def test_configured_argon2_is_the_preferred_hasher():
    assert django_settings.PASSWORD_HASHERS[0] == "accounts.hashers.ConfiguredArgon2PasswordHasher"
    assert isinstance(get_hasher("default"), ConfiguredArgon2PasswordHasher)


@pytest.mark.real_argon2
def test_hashed_password_is_argon2id_with_the_configured_parameters():
    encoded = make_password(PASSPHRASE)
    assert encoded.startswith("argon2$argon2id$")
    assert "m=19456,t=2,p=1" in encoded
    assert PASSPHRASE not in encoded
    assert isinstance(identify_hasher(encoded), ConfiguredArgon2PasswordHasher)


def test_hasher_reads_its_parameters_from_settings(settings):
    settings.ARGON2_TIME_COST = 3
    settings.ARGON2_MEMORY_COST_KIB = 20480
    settings.ARGON2_PARALLELISM = 2
    encoded = ConfiguredArgon2PasswordHasher().encode(PASSPHRASE, "abcdefghijklmnop")
    assert "m=20480,t=3,p=2" in encoded


def test_same_password_hashes_differently_each_time():
    assert make_password(PASSPHRASE) != make_password(PASSPHRASE)


def test_check_password_accepts_right_and_rejects_wrong_password():
    encoded = make_password(PASSPHRASE)
    assert check_password(PASSPHRASE, encoded)
    assert not check_password(PASSPHRASE.upper(), encoded)
    assert not check_password(PASSPHRASE + " ", encoded)  # whitespace is significant
    assert not check_password("", encoded)


@pytest.mark.real_argon2
def test_current_hash_does_not_need_updating():
    encoded = make_password(PASSPHRASE)
    assert identify_hasher(encoded).must_update(encoded) is False
    setter = mock.Mock()
    assert check_password(PASSPHRASE, encoded, setter=setter)
    setter.assert_not_called()


def test_pbkdf2_hash_must_be_updated_on_sign_in():
    encoded = PBKDF2PasswordHasher().encode(PASSPHRASE, "somesaltvalue123")
    assert encoded.startswith("pbkdf2_sha256$")
    setter = mock.Mock()
    assert check_password(PASSPHRASE, encoded, setter=setter)
    setter.assert_called_once_with(PASSPHRASE)


def test_pbkdf2_hash_is_not_updated_when_the_password_is_wrong():
    encoded = PBKDF2PasswordHasher().encode(PASSPHRASE, "somesaltvalue123")
    setter = mock.Mock()
    assert not check_password("a different password", encoded, setter=setter)
    setter.assert_not_called()


@pytest.mark.real_argon2
@pytest.mark.django_db
def test_user_with_pbkdf2_hash_is_rehashed_with_argon2_on_successful_check():
    user = User.objects.create(
        email="legacy@example.com", password=PBKDF2PasswordHasher().encode(PASSPHRASE, "salt12345678")
    )
    assert user.check_password(PASSPHRASE)
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert "m=19456,t=2,p=1" in user.password
    assert user.check_password(PASSPHRASE)


@pytest.mark.django_db
def test_user_with_pbkdf2_hash_is_not_rehashed_on_failed_check():
    legacy = PBKDF2PasswordHasher().encode(PASSPHRASE, "salt12345678")
    user = User.objects.create(email="legacy@example.com", password=legacy)
    assert not user.check_password("not the password at all")
    user.refresh_from_db()
    assert user.password == legacy


@pytest.mark.real_argon2
def test_argon2_hash_with_django_default_parameters_must_be_updated():
    # Django's own Argon2 defaults are m=102400,t=2,p=8: still "argon2", but not ours.
    encoded = Argon2PasswordHasher().encode(PASSPHRASE, "somesaltvalue123")
    assert "m=19456,t=2,p=1" not in encoded
    hasher = identify_hasher(encoded)
    assert isinstance(hasher, ConfiguredArgon2PasswordHasher)
    assert hasher.must_update(encoded) is True
    setter = mock.Mock()
    assert check_password(PASSPHRASE, encoded, setter=setter)
    setter.assert_called_once_with(PASSPHRASE)


@pytest.mark.real_argon2
def test_argon2_hash_with_weaker_parameters_must_be_updated():
    weak = type("WeakArgon2", (Argon2PasswordHasher,), {"time_cost": 1, "memory_cost": 1024, "parallelism": 1})
    encoded = weak().encode(PASSPHRASE, "somesaltvalue123")
    assert "m=1024,t=1,p=1" in encoded
    assert ConfiguredArgon2PasswordHasher().must_update(encoded) is True


@pytest.mark.real_argon2
def test_raising_the_configured_cost_marks_existing_hashes_for_update(settings):
    encoded = make_password(PASSPHRASE)
    settings.ARGON2_MEMORY_COST_KIB = 65536
    assert ConfiguredArgon2PasswordHasher().must_update(encoded) is True


def _import_settings_with(extra_env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_in_project(["-c", "import config.settings"], clean_env(DEBUG="true", **extra_env), timeout=60)


@pytest.mark.parametrize(
    "weaker",
    [
        {"ARGON2_MEMORY_COST_KIB": "1024"},
        {"ARGON2_MEMORY_COST_KIB": "19455"},
        {"ARGON2_TIME_COST": "1"},
        {"ARGON2_PARALLELISM": "0"},
    ],
)
def test_weaker_argon2_parameters_make_settings_refuse_to_load(weaker):
    result = _import_settings_with(weaker)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "Argon2" in result.stderr


def test_stronger_argon2_parameters_are_allowed():
    result = _import_settings_with({"ARGON2_MEMORY_COST_KIB": "65536", "ARGON2_TIME_COST": "3"})
    assert result.returncode == 0, result.stderr


# --- Policy -----------------------------------------------------------------------


def test_eleven_characters_are_rejected_as_too_short():
    assert error_codes(phrase_of_length(11)) == {"password_too_short"}


def test_twelve_characters_are_accepted():
    validate_password(phrase_of_length(12))


def test_128_characters_are_accepted():
    validate_password(phrase_of_length(128))


def test_129_characters_are_rejected_as_too_long():
    assert error_codes(phrase_of_length(129)) == {"password_too_long"}


def test_far_too_long_password_is_rejected_not_truncated():
    assert "password_too_long" in error_codes(phrase_of_length(4096))


def test_129_character_password_is_not_accepted_as_its_128_character_prefix():
    long_password = phrase_of_length(129)
    prefix = long_password[:128]
    validate_password(prefix)  # the prefix alone is fine...
    with pytest.raises(ValidationError):  # ...but the full password is refused, never shortened
        validate_password(long_password)


def test_stored_128_character_password_does_not_match_longer_or_shorter_input():
    password = phrase_of_length(128)
    encoded = make_password(password)
    assert check_password(password, encoded)
    assert not check_password(password + "x", encoded)
    assert not check_password(password[:72], encoded)  # no bcrypt-style 72-byte truncation
    assert not check_password(password[:127], encoded)


def test_length_is_counted_in_characters_not_bytes():
    accented = "é" * 128  # 256 bytes in UTF-8
    validate_password(accented)
    assert error_codes("é" * 129) == {"password_too_long"}


@pytest.mark.parametrize(
    "password",
    [
        "aaaa bbbb cccc dddd",
        PASSPHRASE,
        "thistle meadow lantern",
        "lowercaseonlynodigits",
        "ALLUPPERCASEPHRASE",
    ],
)
def test_no_composition_rules_for_passphrases(password):
    validate_password(password)


@pytest.mark.parametrize("password", ["administrator", "1234567890qwertyuiop", "ADMINISTRATOR"])
def test_common_passwords_are_rejected(password):
    assert "password_too_common" in error_codes(password)


def test_password_similar_to_the_email_is_rejected():
    user = User(email="bartholomew.quince@example.com", name="")
    assert "password_too_similar" in error_codes("bartholomew.quince@example.com", user=user)
    assert "password_too_similar" in error_codes("bartholomewquince", user=user)


def test_password_similar_to_the_name_is_rejected():
    user = User(email="someone@example.com", name="Maximilian Featherstonehaugh")
    assert "password_too_similar" in error_codes("maximilian featherstonehaugh", user=user)


def test_unrelated_password_is_accepted_for_a_user():
    user = User(email="bartholomew.quince@example.com", name="Maximilian Featherstonehaugh")
    validate_password(PASSPHRASE, user=user)


def test_validators_in_settings_cover_similarity_length_and_common_passwords():
    kinds = {type(validator).__name__ for validator in get_default_password_validators()}
    assert kinds == {
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "MaximumLengthValidator",
        "CommonPasswordValidator",
    }
    similarity = next(
        v for v in get_default_password_validators() if type(v).__name__ == "UserAttributeSimilarityValidator"
    )
    assert set(similarity.user_attributes) == {"email", "name"}


# --- accounts.validators.MaximumLengthValidator -----------------------------------


def test_maximum_length_validator_help_text():
    assert MaximumLengthValidator(128).get_help_text() == "Your password can be at most 128 characters long."
    assert MaximumLengthValidator(64).get_help_text() == "Your password can be at most 64 characters long."


def test_maximum_length_help_text_is_among_the_policy_help_texts():
    assert "Your password can be at most 128 characters long." in password_validators_help_texts()


def test_maximum_length_validator_defaults_to_128():
    validator = MaximumLengthValidator()
    validator.validate("x" * 128)
    with pytest.raises(ValidationError):
        validator.validate("x" * 129)


def test_maximum_length_validator_accepts_exactly_the_limit():
    MaximumLengthValidator(10).validate("x" * 10)


def test_maximum_length_validator_error_has_code_params_and_message():
    with pytest.raises(ValidationError) as excinfo:
        MaximumLengthValidator(10).validate("x" * 11)
    error = excinfo.value.error_list[0]
    assert error.code == "password_too_long"
    assert error.params == {"max_length": 10}
    assert "at most 10 characters" in error.messages[0]


def test_maximum_length_validator_message_is_singular_for_one():
    with pytest.raises(ValidationError) as excinfo:
        MaximumLengthValidator(1).validate("xx")
    assert "at most 1 character." in excinfo.value.messages[0]
