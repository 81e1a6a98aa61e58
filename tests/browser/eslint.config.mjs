// ESLint flat config for the single-page app in static/app/ (plain ES modules, no bundler).
//
// ESLint ignores every file outside the config array's base path, which is this
// file's directory, or the working directory when --config is given. The SPA
// lives two levels up, so `npm run lint` (package.json) runs ESLint from the
// repository root with --config pointing here; the patterns below are therefore
// relative to the repository root.

import js from "@eslint/js";
import globals from "globals";

// Browser globals that are easy to reach by accident: each is also a common local
// name (`status`, `name`, ...), so a missing declaration would silently read the
// window property instead of failing no-undef.
const CONFUSING_BROWSER_GLOBALS = [
  "close", "closed", "event", "length", "name", "opener", "origin", "parent", "self", "status", "stop", "top",
];

export default [
  {
    linterOptions: {
      reportUnusedDisableDirectives: "error",
    },
  },
  js.configs.recommended,
  {
    files: ["static/app/**/*.js", "static/accounts/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
    rules: {
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "all" }],
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
      "prefer-const": "error",
      "no-var": "error",
      "no-shadow": "error",
      // The app reports problems to the person in the page (role="alert" regions);
      // a console call left behind only ships debugging output to every browser.
      "no-console": "error",
      "no-restricted-globals": ["error", ...CONFUSING_BROWSER_GLOBALS],
    },
  },
  {
    files: ["tests/browser/eslint.config.mjs"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
    },
  },
];
