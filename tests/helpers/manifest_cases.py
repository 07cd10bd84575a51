"""Failing manifests, one per rule of docs/manifest.md (and per loader refusal).

Each case is (name, YAML text); ``test_rules.py`` validates it as ``m.yaml`` in the work
folder and compares the output with ``golden/<name>.txt``.
"""

from __future__ import annotations

HEAD = "version: 1\nname: t\n"

RULE_CASES: list[tuple[str, str]] = [
    # -- top level ---------------------------------------------------------------------------
    ("version_not_1", "version: 2\nname: t\nshots:\n  - {id: a, prompt: p}\n"),
    ("required_keys_missing", "output_dir: out\n"),
    ("name_pattern", "version: 1\nname: My Film\nshots:\n  - {id: a, prompt: p}\n"),
    ("shots_empty", HEAD + "shots: []\n"),
    ("unknown_top_key", HEAD + "shots:\n  - {id: a, prompt: p}\nrenders: x\n"),
    ("unknown_key_near_miss", HEAD + "shots:\n  - id: a\n    prompt: p\n    resolutoin: 720p\n"),
    ("duplicate_key", HEAD + "shots:\n  - id: a\n    prompt: p\n    prompt: q\n"),
    ("wrong_type_shots", HEAD + "shots: {id: a}\n"),
    ("verify_size_unknown", HEAD + "verify: {size: lenient}\nshots:\n  - {id: a, prompt: p}\n"),
    ("verify_unknown_key", HEAD + "verify: {sise: warn}\nshots:\n  - {id: a, prompt: p}\n"),
    # -- ids ---------------------------------------------------------------------------------
    ("shot_id_pattern", HEAD + "shots:\n  - {id: -bad id, prompt: p}\n"),
    ("shot_id_missing", HEAD + "shots:\n  - {prompt: p}\n"),
    ("shot_id_duplicate", HEAD + "shots:\n  - {id: a, prompt: p}\n  - {id: a, prompt: q}\n"),
    ("matrix_id_collision", HEAD + "shots:\n  - id: a\n    matrix:\n"
                                  "      prompt: [Hello world, hello-world]\n"),
    ("matrix_unknown_field", HEAD + "shots:\n  - id: a\n    prompt: p\n    matrix:\n"
                                    "      id: [b, c]\n"),
    # -- prompts -----------------------------------------------------------------------------
    ("prompt_and_multi_prompt", HEAD + "shots:\n  - id: a\n    prompt: p\n    multi_prompt:\n"
                                       "      - {prompt: q, duration: 3}\n"),
    ("no_prompt", HEAD + "shots:\n  - id: a\n    duration: 5\n"),
    ("prompt_empty", HEAD + "shots:\n  - {id: a, prompt: ''}\n"),
    ("prompt_too_long", HEAD + "vars: {long: " + "x" * 2000 + "}\nshots:\n"
                               "  - {id: a, prompt: '${long} ${long}'}\n"),
    ("undefined_var", HEAD + "vars: {place: Big Sur}\nshots:\n  - {id: a, prompt: 'at ${plac}'}\n"),
    ("malformed_var", HEAD + "shots:\n  - {id: a, prompt: 'at ${ place }'}\n"),
    # -- durations ---------------------------------------------------------------------------
    ("duration_too_long", HEAD + "shots:\n  - {id: a, prompt: p}\n  - {id: b, prompt: p}\n"
                                 "  - {id: c, prompt: p}\n  - {id: d, prompt: p, duration: 16}\n"),
    ("duration_wrong_type", HEAD + "shots:\n  - {id: a, prompt: p, duration: '5'}\n"),
    ("duration_not_integer", HEAD + "shots:\n  - {id: a, prompt: p, duration: 4.5}\n"),
    ("multi_prompt_sum_mismatch", HEAD + "shots:\n  - id: a\n    duration: 5\n    multi_prompt:\n"
                                         "      - {prompt: p, duration: 3}\n"
                                         "      - {prompt: q, duration: 4}\n"),
    ("multi_prompt_too_many", HEAD + "shots:\n  - id: a\n    multi_prompt:\n"
                                     + "      - {prompt: p, duration: 1}\n" * 7),
    ("multi_prompt_segment_zero", HEAD + "shots:\n  - id: a\n    multi_prompt:\n"
                                         "      - {prompt: p, duration: 0}\n"
                                         "      - {prompt: q, duration: 4}\n"),
    ("multi_prompt_sum_too_long", HEAD + "shots:\n  - id: a\n    multi_prompt:\n"
                                         "      - {prompt: p, duration: 9}\n"
                                         "      - {prompt: q, duration: 9}\n"),
    ("multi_prompt_sum_too_short", HEAD + "shots:\n  - id: a\n    multi_prompt:\n"
                                          "      - {prompt: p, duration: 1}\n"),
    ("segment_missing_prompt", HEAD + "shots:\n  - id: a\n    multi_prompt:\n"
                                      "      - {duration: 3}\n"),
    # -- enums and types ---------------------------------------------------------------------
    ("resolution_enum", HEAD + "shots:\n  - {id: a, prompt: p, resolution: 1080}\n"),
    ("resolution_near_miss", HEAD + "shots:\n  - {id: a, prompt: p, resolution: 1080P}\n"),
    ("aspect_ratio_enum", HEAD + "shots:\n  - {id: a, prompt: p, aspect_ratio: '4:3'}\n"),
    ("generate_audio_type", HEAD + "shots:\n  - {id: a, prompt: p, generate_audio: yes}\n"),
    ("takes_range", HEAD + "shots:\n  - {id: a, prompt: p, takes: 21}\n"
                           "  - {id: b, prompt: p, takes: 0}\n"),
    ("defaults_bad_value", HEAD + "defaults: {resolution: 8k}\n"
                                  "shots:\n  - {id: a, prompt: p}\n"),
    ("defaults_no_id", HEAD + "defaults: {id: x, after: [a]}\nshots:\n  - {id: a, prompt: p}\n"),
    # -- references --------------------------------------------------------------------------
    ("image_ref_out_of_range", HEAD + "shots:\n  - {id: a, prompt: '@Image3 and @Image1', "
                                      "images: [ok.png, ok2.jpg]}\n"),
    ("element_ref_no_elements", HEAD + "shots:\n  - {id: a, prompt: '@Element1 runs'}\n"),
    ("asset_not_attached", HEAD + "assets: {coast: ok2.jpg}\n"
                                  "shots:\n  - {id: a, prompt: 'view of @coast'}\n"),
    ("asset_only_start_frame", HEAD + "assets: {coast: ok2.jpg}\nshots:\n"
                                      "  - {id: a, prompt: 'view of @coast',\n"
                                      "     start_frame: coast}\n"),
    ("element_not_attached", HEAD + "elements:\n  hero: {frontal: ok.png}\n"
                                    "shots:\n  - {id: a, prompt: '@hero waves'}\n"),
    ("unknown_at_word_warns", HEAD + "assets: {coast: ok2.jpg}\nshots:\n"
                                     "  - {id: a, prompt: '@coats at noon', images: [coast]}\n"),
    ("unknown_element", HEAD + "elements:\n  hero: {frontal: ok.png}\n"
                               "shots:\n  - {id: a, prompt: p, elements: [heor]}\n"),
    ("asset_used_as_element", HEAD + "assets: {coast: ok2.jpg}\n"
                                     "shots:\n  - {id: a, prompt: p, elements: [coast]}\n"),
    ("video_subject_limit", HEAD + "elements:\n  dancer: {video: 'https://cdn.example/d.mp4'}\n"
                                   "  hero: {frontal: ok.png}\nshots:\n  - id: a\n    prompt: p\n"
                                   "    elements: [dancer, hero, hero]\n"
                                   "    images: [ok.png, ok2.jpg]\n"),
    # -- names -------------------------------------------------------------------------------
    ("asset_and_element_same_name", HEAD + "assets: {hero: ok.png}\n"
                                           "elements:\n  hero: {frontal: ok.png}\n"
                                           "shots:\n  - {id: a, prompt: p}\n"),
    ("reserved_name", HEAD + "assets: {Image1: ok.png}\nshots:\n  - {id: a, prompt: p}\n"),
    ("bad_asset_name", HEAD + "assets: {hero-side: ok.png}\nshots:\n  - {id: a, prompt: p}\n"),
    ("element_frontal_and_video", HEAD + "elements:\n  hero: {frontal: ok.png, "
                                         "video: 'https://x.example/v.mp4'}\n"
                                         "shots:\n  - {id: a, prompt: p}\n"),
    ("element_empty", HEAD + "elements:\n  hero: {references: [ok.png]}\n"
                             "shots:\n  - {id: a, prompt: p}\n"),
    ("element_unknown_key", HEAD + "elements:\n  hero: {front: ok.png}\n"
                                   "shots:\n  - {id: a, prompt: p}\n"),
    # -- local files and URLs ----------------------------------------------------------------
    ("asset_missing", HEAD + "assets: {coast: missing.jpg}\nshots:\n"
                             "  - {id: a, prompt: p, images: [coast]}\n"),
    ("path_missing_near_asset", HEAD + "assets: {coast: ok2.jpg}\nshots:\n"
                                       "  - {id: a, prompt: p, images: [coats]}\n"),
    ("asset_not_image", HEAD + "assets: {coast: text.png}\nshots:\n  - {id: a, prompt: p}\n"),
    ("asset_too_big", HEAD + "assets: {coast: big.jpg}\nshots:\n  - {id: a, prompt: p}\n"),
    ("asset_is_directory", HEAD + "assets: {coast: folder.png}\nshots:\n"
                                  "  - {id: a, prompt: p}\n"),
    ("asset_small_warns", HEAD + "assets: {icon: small.png}\nshots:\n"
                                 "  - {id: a, prompt: '@icon', images: [icon]}\n"),
    ("file_url", HEAD + "assets: {coast: 'file:///tmp/coast.jpg'}\nshots:\n"
                        "  - {id: a, prompt: p}\n"),
    ("ftp_url", HEAD + "shots:\n  - {id: a, prompt: p, start_frame: 'ftp://x.example/a.jpg'}\n"),
    ("video_subject_local", HEAD + "elements:\n  dancer: {video: dance.mp4}\n"
                                   "shots:\n  - {id: a, prompt: p}\n"),
    # -- links -------------------------------------------------------------------------------
    ("from_shot_unknown", HEAD + "shots:\n  - {id: s01, prompt: p}\n"
                                 "  - {id: s02, prompt: p, start_frame: {from_shot: s1}}\n"),
    ("after_unknown", HEAD + "shots:\n  - {id: s01, prompt: p, after: [s00]}\n"),
    ("cycle", HEAD + "shots:\n  - {id: s01, prompt: p, after: [s03]}\n"
                     "  - {id: s02, prompt: p, start_frame: {from_shot: s01}}\n"
                     "  - {id: s03, prompt: p, after: [s02]}\n"),
    ("self_cycle", HEAD + "shots:\n  - {id: s01, prompt: p, end_frame: {from_shot: s01}}\n"),
    ("from_shot_ambiguous", HEAD + "shots:\n  - id: s01\n    prompt: p\n"
                                   "    matrix: {duration: [3, 5]}\n"
                                   "  - {id: s02, prompt: p, start_frame: {from_shot: s01}}\n"),
    ("frame_value", HEAD + "shots:\n  - {id: s01, prompt: p}\n"
                           "  - {id: s02, prompt: p, start_frame: {from_shot: s01, frame: mid}}\n"),
    ("frame_past_end", HEAD + "shots:\n  - {id: s01, prompt: p, duration: 4}\n"
                              "  - {id: s02, prompt: p,\n"
                              "     start_frame: {from_shot: s01, frame: 4.5}}\n"),
    # -- api, budget, vars -------------------------------------------------------------------
    ("base_url_invalid", HEAD + "api: {base_url: 'gateway.example'}\n"
                                "shots:\n  - {id: a, prompt: p}\n"),
    ("secret_in_api_key_env", HEAD + "api:\n  api_key_env: sk-live-4f9a8b7c6d5e4f3a2b1c0d9e\n"
                                     "shots:\n  - {id: a, prompt: p}\n"),
    ("api_key_field", HEAD + "api:\n  api_key: abc\nshots:\n  - {id: a, prompt: p}\n"),
    ("wire_unknown_field", HEAD + "api:\n  wire: {start_frme: image_start}\n"
                                  "shots:\n  - {id: a, prompt: p}\n"),
    ("wire_clash", HEAD + "api:\n  wire: {start_frame: prompt}\nshots:\n  - {id: a, prompt: p}\n"),
    ("wire_double_rename", HEAD + "api:\n  wire: {start_frame: a, start_image_url: b}\n"
                                  "shots:\n  - {id: a, prompt: p}\n"),
    ("emulator_settings_range", HEAD + "api:\n  emulator: {jitter: 2, render: fast, "
                                       "error_rates: {429: 0.1, 404: 0.2}}\n"
                                       "shots:\n  - {id: a, prompt: p}\n"),
    ("emulator_ignored_warns", HEAD + "api:\n  base_url: https://gateway.example\n"
                                      "  emulator: {queue_time: 1}\n"
                                      "shots:\n  - {id: a, prompt: p}\n"),
    ("concurrency_range", HEAD + "api: {concurrency: 0, submit_rate: 0}\n"
                                 "shots:\n  - {id: a, prompt: p}\n"),
    ("budget_rates_unknown", HEAD + "budget:\n  max_credits: -5\n  rates: {8k: 40}\n"
                                    "shots:\n  - {id: a, prompt: p}\n"),
    ("unused_var_warns", HEAD + "vars: {place: Big Sur}\nshots:\n  - {id: a, prompt: p}\n"),
    ("var_bad_name", HEAD + "vars: {1st: x}\nshots:\n  - {id: a, prompt: p}\n"),
    ("extra_not_mapping", HEAD + "shots:\n  - {id: a, prompt: p, extra: [1]}\n"),
    ("many_problems_at_once", HEAD + "shots:\n  - id: a\n    prompt: '${nope}'\n"
                                     "    duration: 20\n    resolutoin: 720p\n"
                                     "  - {id: a, prompt: p}\n"),
]
