"""describe_user_agent: the short "Browser N on System" text of the devices page, for real user agents and junk."""

import pytest

from accounts.user_agents import describe_user_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"
SAFARI_MACOS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15"
)
SAFARI_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
)
SAMSUNG_INTERNET = (
    "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
)
OPERA_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0"
)
CHROME_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1"
)
FIREFOX_IOS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "FxiOS/132.0 Mobile/15E148 Safari/605.1.15"
)
EDGE_ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.0.0"
)
CHROME_CHROMEOS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CHROME_MACOS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IE11_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko"


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME_WINDOWS, "Chrome 131 on Windows"),
        (EDGE_WINDOWS, "Edge 131 on Windows"),
        (FIREFOX_LINUX, "Firefox 133 on Linux"),
        (FIREFOX_WINDOWS, "Firefox 132 on Windows"),
        (SAFARI_MACOS, "Safari 18 on macOS"),
        (SAFARI_IOS, "Safari 18 on iOS"),
        (CHROME_ANDROID, "Chrome 131 on Android"),
        (SAMSUNG_INTERNET, "Samsung Internet 23 on Android"),
        (OPERA_WINDOWS, "Opera 115 on Windows"),
        (CHROME_IOS, "Chrome 131 on iOS"),
        (FIREFOX_IOS, "Firefox 132 on iOS"),
        (EDGE_ANDROID, "Edge 131 on Android"),
        (CHROME_CHROMEOS, "Chrome 131 on ChromeOS"),
        (CHROME_MACOS, "Chrome 131 on macOS"),
    ],
    ids=[
        "chrome-windows",
        "edge-windows",
        "firefox-linux",
        "firefox-windows",
        "safari-macos",
        "safari-ios",
        "chrome-android",
        "samsung-internet",
        "opera",
        "chrome-ios-crios",
        "firefox-ios-fxios",
        "edge-android",
        "chrome-chromeos",
        "chrome-macos",
    ],
)
def test_real_browser_user_agents_are_described_as_browser_major_version_on_system(user_agent, expected):
    assert describe_user_agent(user_agent) == expected


def test_browsers_built_on_chrome_are_not_reported_as_chrome():
    for user_agent in (EDGE_WINDOWS, OPERA_WINDOWS, SAMSUNG_INTERNET, EDGE_ANDROID):
        assert not describe_user_agent(user_agent).startswith("Chrome")


def test_chrome_and_other_browsers_are_not_reported_as_safari():
    for user_agent in (CHROME_WINDOWS, CHROME_ANDROID, CHROME_IOS, FIREFOX_IOS, CHROME_MACOS):
        assert "Safari" not in describe_user_agent(user_agent)


def test_ios_is_not_reported_as_macos_although_it_says_like_mac_os_x():
    assert describe_user_agent(SAFARI_IOS).endswith("on iOS")
    assert describe_user_agent(CHROME_IOS).endswith("on iOS")


def test_android_is_not_reported_as_linux():
    assert describe_user_agent(CHROME_ANDROID).endswith("on Android")


def test_system_without_a_known_browser_is_described_by_the_system_alone():
    assert describe_user_agent(IE11_WINDOWS) == "Windows"


def test_command_line_client_is_shown_as_its_own_user_agent():
    assert describe_user_agent("curl/8.5.0") == "curl/8.5.0"


def test_empty_user_agent_is_unknown_device():
    assert describe_user_agent("") == "Unknown device"


def test_short_garbage_is_shown_as_is():
    assert describe_user_agent("!!@@## not a browser ##@@!!") == "!!@@## not a browser ##@@!!"


def test_long_garbage_is_cut_to_sixty_characters():
    garbage = "x" * 40 + "y" * 40 + "z" * 400
    assert describe_user_agent(garbage) == "x" * 40 + "y" * 20


def test_bot_user_agent_without_browser_or_system_is_cut_to_sixty_characters():
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    assert describe_user_agent(bot) == bot[:60]
    assert len(describe_user_agent(bot)) == 60


def test_version_number_is_the_major_version_only():
    assert describe_user_agent("Mozilla/5.0 (X11; Linux x86_64; rv:99.0) Gecko/20100101 Firefox/99.12.3") == (
        "Firefox 99 on Linux"
    )
