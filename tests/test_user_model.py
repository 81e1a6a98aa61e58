"""The custom User model and its manager: email is the case-insensitive sign-in identifier."""

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.email_address import InvalidEmailAddress
from accounts.models import User
from tests.support.accounts import STRONG_PASSWORD

pytestmark = pytest.mark.django_db


# --- Identity -------------------------------------------------------------------


def test_email_is_the_username_field():
    assert User.USERNAME_FIELD == "email"
    assert User.EMAIL_FIELD == "email"
    assert "name" in User.REQUIRED_FIELDS
    assert "username" not in {field.name for field in User._meta.get_fields()}


def test_create_user_stores_the_normalised_email():
    user = User.objects.create_user(email="  Alice@Example.COM ", password=STRONG_PASSWORD)
    user.refresh_from_db()
    assert user.email == "alice@example.com"
    assert str(user) == "alice@example.com"


def test_create_user_with_an_address_differing_only_in_case_raises_integrity_error():
    User.objects.create_user(email="Alice@Example.com", password=STRONG_PASSWORD)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(email="alice@example.com", password=STRONG_PASSWORD)
    assert User.objects.count() == 1


def test_create_user_with_a_full_width_variant_raises_integrity_error():
    User.objects.create_user(email="alice@example.com", password=STRONG_PASSWORD)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(email="ＡＬＩＣＥ＠example.com", password=STRONG_PASSWORD)
    assert User.objects.count() == 1


def test_database_rejects_case_variants_even_without_normalisation():
    # objects.create bypasses normalize_email: only the Lower("email") constraint stops this.
    User.objects.create(email="Bob@Example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email="bob@example.com")
    assert User.objects.count() == 1


def test_case_insensitive_unique_constraint_is_declared_on_the_model():
    names = {constraint.name for constraint in User._meta.constraints}
    assert "accounts_user_email_ci_unique" in names


def test_database_allows_two_genuinely_different_addresses():
    User.objects.create(email="bob@example.com")
    User.objects.create(email="bobby@example.com")
    assert User.objects.count() == 2


def test_create_user_rejects_an_invalid_address():
    with pytest.raises(InvalidEmailAddress):
        User.objects.create_user(email="not-an-address", password=STRONG_PASSWORD)
    assert not User.objects.exists()


def test_create_user_rejects_a_missing_address():
    with pytest.raises(InvalidEmailAddress):
        User.objects.create_user(email=None, password=STRONG_PASSWORD)
    assert not User.objects.exists()


# --- Lookups ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["alice@example.com", "ALICE@EXAMPLE.COM", "  Alice@Example.com\n", "ＡＬＩＣＥ＠example.com"]
)
def test_get_by_natural_key_is_case_and_whitespace_insensitive(user, typed):
    assert User.objects.get_by_natural_key(typed) == user


@pytest.mark.parametrize("typed", ["Alice@Example.com", " alice@example.com "])
def test_find_by_email_is_case_and_whitespace_insensitive(user, typed):
    assert User.objects.find_by_email(typed) == user


@pytest.mark.parametrize(
    "garbage", [None, "", "   ", "alice", "alice@", "al\x00ice@example.com", 42, ["alice@example.com"]]
)
def test_get_by_natural_key_raises_does_not_exist_for_garbage(user, garbage):
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key(garbage)


@pytest.mark.parametrize("garbage", [None, "", "alice", "@example.com", "\u0430lice@example.com", 42])
def test_find_by_email_returns_none_for_garbage(user, garbage):
    assert User.objects.find_by_email(garbage) is None


def test_find_by_email_returns_none_for_an_unknown_address(user):
    assert User.objects.find_by_email("mallory@example.com") is None


def test_get_by_natural_key_raises_does_not_exist_for_an_unknown_address(user):
    with pytest.raises(User.DoesNotExist):
        User.objects.get_by_natural_key("mallory@example.com")


def test_authenticate_accepts_the_email_in_any_case(user):
    assert authenticate(username="ALICE@example.com", password=STRONG_PASSWORD) == user


def test_authenticate_rejects_a_wrong_password(user):
    assert authenticate(username="alice@example.com", password=STRONG_PASSWORD + "!") is None


def test_authenticate_rejects_an_inactive_user(make_user):
    make_user(is_active=False)
    assert authenticate(username="alice@example.com", password=STRONG_PASSWORD) is None


# --- Fields -------------------------------------------------------------------------


def test_new_user_field_defaults():
    before = timezone.now()
    user = User.objects.create_user(email="carol@example.com", password=STRONG_PASSWORD)
    user.refresh_from_db()
    assert user.name == ""
    assert user.email_verified_at is None
    assert user.email_verified is False
    assert user.is_active is True
    assert user.is_staff is False
    assert user.is_superuser is False
    assert before <= user.date_joined <= timezone.now()


def test_password_is_hashed_not_stored_in_clear():
    user = User.objects.create_user(email="carol@example.com", password=STRONG_PASSWORD)
    assert STRONG_PASSWORD not in user.password
    assert user.check_password(STRONG_PASSWORD)
    assert not user.check_password("wrong password entirely")


def test_create_user_without_password_gets_an_unusable_one():
    user = User.objects.create_user(email="carol@example.com")
    assert not user.has_usable_password()
    assert not user.check_password("")


def test_email_verified_follows_email_verified_at():
    user = User.objects.create_user(email="carol@example.com", password=STRONG_PASSWORD)
    assert not user.email_verified
    user.email_verified_at = timezone.now()
    assert user.email_verified
    user.email_verified_at = None
    assert not user.email_verified


def test_mark_email_verified_stamps_now_and_saves_only_that_field():
    user = User.objects.create_user(email="carol@example.com", password=STRONG_PASSWORD, name="Carol")
    User.objects.filter(pk=user.pk).update(name="Renamed meanwhile")
    before = timezone.now()
    user.mark_email_verified()
    assert user.email_verified
    assert before <= user.email_verified_at <= timezone.now()
    fresh = User.objects.get(pk=user.pk)
    assert fresh.email_verified_at == user.email_verified_at
    assert fresh.name == "Renamed meanwhile"  # update_fields: the stale name was not written back


def test_mark_email_verified_without_saving_leaves_the_row_to_the_caller():
    user = User.objects.create_user(email="carol@example.com", password=STRONG_PASSWORD)
    user.mark_email_verified(save=False)
    assert user.email_verified
    assert User.objects.get(pk=user.pk).email_verified_at is None


def test_full_and_short_name_fall_back_to_the_email():
    named = User(email="dan@example.com", name="Dan")
    unnamed = User(email="erin@example.com")
    assert named.get_full_name() == named.get_short_name() == "Dan"
    assert unnamed.get_full_name() == unnamed.get_short_name() == "erin@example.com"


def test_name_longer_than_150_characters_fails_validation():
    from django.core.exceptions import ValidationError

    user = User(email="carol@example.com", name="x" * 151)
    user.set_unusable_password()
    with pytest.raises(ValidationError) as excinfo:
        user.full_clean()
    assert "name" in excinfo.value.message_dict


# --- Superusers ---------------------------------------------------------------------


def test_create_superuser_is_staff_superuser_and_verified():
    admin = User.objects.create_superuser(email="Root@Example.com", password=STRONG_PASSWORD)
    assert admin.email == "root@example.com"
    assert admin.is_staff is True
    assert admin.is_superuser is True
    assert admin.email_verified is True
    assert admin.check_password(STRONG_PASSWORD)


def test_create_superuser_refuses_is_staff_false():
    with pytest.raises(ValueError, match="is_staff"):
        User.objects.create_superuser(email="root@example.com", password=STRONG_PASSWORD, is_staff=False)
    assert not User.objects.exists()


def test_create_superuser_refuses_is_superuser_false():
    with pytest.raises(ValueError, match="is_superuser"):
        User.objects.create_superuser(email="root@example.com", password=STRONG_PASSWORD, is_superuser=False)
    assert not User.objects.exists()


def test_createsuperuser_command_works_with_email(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", STRONG_PASSWORD)
    call_command("createsuperuser", interactive=False, email="Root@Example.com", name="Root", verbosity=0)
    admin = User.objects.get()
    assert admin.email == "root@example.com"
    assert admin.name == "Root"
    assert admin.is_superuser and admin.is_staff and admin.email_verified
    assert admin.has_usable_password()
    assert admin.check_password(STRONG_PASSWORD)


def test_createsuperuser_command_refuses_an_existing_address_in_another_case(monkeypatch, user):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", STRONG_PASSWORD)
    with pytest.raises(CommandError, match="already taken"):
        call_command("createsuperuser", interactive=False, email="ALICE@example.com", name="Root", verbosity=0)
    assert User.objects.count() == 1
    assert not User.objects.get().is_superuser


def test_createsuperuser_command_refuses_an_invalid_address(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", STRONG_PASSWORD)
    with pytest.raises(CommandError, match="valid email"):
        call_command("createsuperuser", interactive=False, email="not-an-address", name="Root", verbosity=0)
    assert not User.objects.exists()
