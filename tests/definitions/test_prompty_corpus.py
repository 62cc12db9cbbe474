"""Every real `.prompty` file of the shared corpus, loaded as a registry feature.

The corpus (`shared/corpus/prompty` beside the project folder, or the folder
PROMPTREG_TEST_CORPUS names; see its README) is copied into `prompts/` of a
temporary registry with one policy per file; the table names each file's outcome: the
messages Prompty would send (roles exactly, content by full text or by its ends), or
the specific problem that refuses it. No file may crash the loader.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from registry.definitions.load import LoadedRegistry, RegistryLoader
from registry.definitions.prompt import PromptFileError
from registry.definitions.prompty import parse_prompty
from registry.definitions.tree import DirTree, clean_path
from registry.errors import RenderError
from registry.render import compile_prompt

PROJECT = Path(__file__).resolve().parents[2]
CORPUS = Path(
    os.environ.get("PROMPTREG_TEST_CORPUS")
    or (PROJECT / ".." / "shared" / "corpus" / "prompty").resolve()
)
pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"the shared Prompty corpus is absent: no folder {CORPUS} "
    "(set PROMPTREG_TEST_CORPUS to the corpus folder)",
)

# (role, full content) or (role, content prefix, content suffix)
Msg = tuple[str, str] | tuple[str, str, str]


@dataclass(frozen=True)
class Loads:
    """The file loads; rendering `variables` (default: its sample) gives `messages`."""

    messages: list[Msg]
    variables: dict[str, Any] | None = None
    contains: tuple[str, ...] = ()  # texts the joined contents hold
    names: tuple[str | None, ...] | None = None
    model: dict[tuple[str | int, ...], Any] = field(default_factory=dict)
    inputs: tuple[str, ...] | None = None
    sample_error: str | None = None  # the file's own sample does not render: why


@dataclass(frozen=True)
class Refused:
    """The loader refuses the feature with exactly these (line, message) problems."""

    problems: tuple[tuple[int, str], ...]


def _writer_variables(sample: dict[str, Any]) -> dict[str, Any]:
    fixed = copy.deepcopy(sample)
    for item in fixed["research"]["web"]:
        item["title"] = item["name"]
    return fixed


RT2 = "microsoft__prompty/runtime__python__prompty__tests__prompts__"
CW = "Azure-Samples__contoso-creative-writer/src__api__agents__"
SHAKESPEARE = "web__src__content__docs__legacy__getting-started__first-prompty__shakespeare"
PF = "src__promptflow__tests__test_configs__prompty__"

EXPECTED: dict[str, Loads | Refused] = {
    "microsoft__prompty/spec__fixtures__basic.prompty": Loads(
        variables={},
        messages=[
            (
                "system",
                "You are an AI assistant who helps people find information.\n\n"
                "# Customer\nYou are helping Jane Doe to find answers to their questions.",
            ),
            ("user", "What is the meaning of life?"),
        ],
        model={
            ("connection", "endpoint"): "${env:OPENAI_ENDPOINT:https://api.openai.com/v1}",
            ("connection", "apiKey"): "${env:OPENAI_API_KEY}",
            ("options", "maxOutputTokens"): 1000,
        },
    ),
    "microsoft__prompty/spec__fixtures__tools_function.prompty": Loads(
        variables={},
        messages=[
            ("system", "You are a helpful assistant with access to tools."),
            ("user", "What's the weather in Paris?"),
        ],
        inputs=("question", "preferred_unit"),
    ),
    "microsoft__prompty/spec__fixtures__summarize.prompty": Loads(
        variables={"text": "Prompty is a file format."},
        messages=[
            (
                "system",
                "You are a summarization assistant. Summarize the following text concisely.",
            ),
            ("user", "Prompty is a file format."),
        ],
    ),
    f"{RT2}file_ref.prompty": Loads(
        variables={},
        messages=[("system", "You are a helpful assistant."), ("user", "What is AI?")],
        inputs=("question",),
    ),
    f"{RT2}config_cascade.prompty": Loads(
        variables={},
        messages=[("system", "Hello world.")],
        model={
            ("connection", "endpoint"): "https://shared.openai.azure.com/",
            ("connection", "kind"): "key",
        },
    ),
    f"{RT2}shorthand_threaded.prompty": Loads(
        variables={
            "question": "And in Paris?",
            "conversation": [
                {"role": "user", "content": "Weather in Rome?"},
                {"role": "assistant", "content": "Sunny."},
            ],
        },
        messages=[
            ("system", "You are a helpful assistant."),
            ("user", "Weather in Rome?"),
            ("assistant", "Sunny."),
            ("user", "And in Paris?"),
        ],
        model={("id",): "gpt-4o"},
    ),
    f"{RT2}shorthand_body_only.prompty": Loads(
        variables={},
        messages=[("system", "You are a helpful assistant that answers questions concisely.")],
        inputs=(),
    ),
    f"microsoft__prompty/{SHAKESPEARE}.prompty": Loads(
        messages=[
            (
                "system",
                "You are a Shakespearean writing assistant who speaks in a` Shakespearean style.",
                "assistant: Dearest,\n  Regretfully, I must decline thy invitation.\n"
                "  Prior engagements call me hence. Apologies.",
            ),
            ("user", "Please write a short text inviting friends to a Game Night."),
        ],
        contains=('"thou" and "hath”.', "example:\nuser: Please write a short text turning"),
        model={("configuration", "azure_endpoint"): "${env:AZURE_OPENAI_ENDPOINT}"},
    ),
    "microsoft__prompty/web__src__content__docs__assets__code__hello.prompty": Refused(
        ((29, "variable 'input' is used but not declared in inputs"),)
    ),
    "microsoft__prompty/runtime__prompty__tests__prompts__context.prompty": Loads(
        messages=[
            (
                "system",
                "You are an AI assistant who helps people find information.",
                "You are helping Sally Davis to find answers to their questions.\n"
                "Use their name to address them in your responses.",
            ),
            ("user", "What kind of clothing do you suggest?"),
        ],
        contains=("catalog: 17\nitem: RainGuard Hiking Jacket\nprice: 110", "catalog: 10"),
        inputs=("question", "customer", "documentation"),
    ),
    "microsoft__prompty/runtime__prompty__tests__prompts__basic_mustache.prompty": Refused(
        ((27, "template engine 'mustache' is not supported: promptreg renders Jinja only"),)
    ),
    "microsoft__prompty/runtime__prompty__tests__prompts__faithfulness.prompty": Loads(
        messages=[
            (
                "system",
                "Task:\nYou must return the following fields in your response in two lines",
                "Do not add additional new lines. Do not add any other fields.",
            )
        ],
        contains=(
            "determine a numerical score called Faitfullness Metric based on",
            "Input:\nThe input to the model\n\nOutput:\nThe output from the model",
            "context: \nThe context used by the model",
            "Faithfulness: Below are the details for different scores:",
            "Example 2:",
        ),
        model={("connection", "azure_deployment"): "gpt-4", ("options", "max_tokens"): 200},
    ),
    "microsoft__prompty/evaluation.prompty": Refused(
        (
            (18, "variable 'name' is used but not declared in inputs"),
            (33, "variable 'input' is used but not declared in inputs"),
            (36, "variable 'output' is used but not declared in inputs"),
        )
    ),
    "microsoft__prompty/runtime__prompty__tests__prompts__agent.prompty": Loads(
        messages=[
            (
                "system",
                "You are a helpful assistant that helps the user with the help of some functions.",
                "You are helping Seth Juarez to find answers to their questions.\n"
                "Use their name to address them in your responses.",
            ),
            ("user", "What's the weather like in San Francisco, Tokyo, and Paris?"),
        ],
        inputs=("firstName", "lastName", "question", "thread"),
        model={("api",): "agent"},
    ),
    "microsoft__prompty/runtime__prompty__tests__prompts__funcfile.prompty": Loads(
        messages=[
            (
                "system",
                "You are a helpful assistant",
                "Use their name to address them in your responses.",
            ),
            ("user", "What's the weather like in San Francisco, Tokyo, and Paris?"),
        ],
        model={("options", "tools", 0, "function", "name"): "get_current_weather"},
    ),
    "microsoft__prompty/runtime__prompty__tests__tools__basic.prompty": Loads(
        messages=[
            (
                "system",
                "You are an AI assistant who helps people find information.",
                "You are helping Jane Doe to find answers to their questions.\n"
                "Use their name to address them in your responses.",
            ),
            ("user", "What is the meaning of life?"),
            ("system", "Be concise in your response!"),
        ],
        names=("seth", None, None),
    ),
    "Azure-Samples__contoso-chat/src__api__contoso_chat__chat.prompty": Refused(
        ((73, "variable 'history' is used but not declared in inputs"),)
    ),
    "Azure-Samples__contoso-chat/docs__workshop__src__1-build__chat-1.prompty": Loads(
        messages=[
            (
                "system",
                "You are an AI agent for the Contoso Outdoors products retailer.",
                "Be brief and concise and use appropriate emojis.",
            )
        ],
        contains=(
            "name: Alpine Explorer Tent\ndescription: Welcome to the joy of camping",
            "The customer's name is John Smith and is 35 years old.",
            '"Base" membership status.\n\n# user\nWhat cold-weather sleeping bag',
        ),
        inputs=("customer", "question"),  # chat-1.json's unused chat_history is no input
        model={("configuration", "azure_endpoint"): "${ENV:AZURE_OPENAI_ENDPOINT}"},
    ),
    "Azure-Samples__contoso-chat/src__api__evaluators__custom_evals__groundedness.prompty": Loads(
        # the file declares `context: {type: object}` but its sample is a string
        sample_error="input 'context' must be of type object, got string",
        variables={"question": "Q?", "context": {"text": "C."}, "answer": "A."},
        messages=[
            (
                "system",
                "You are an AI assistant. You will be given the definition",
                "no other text or information.",
            ),
            (
                "user",
                "You will be presented with a CONTEXT and an ANSWER about that CONTEXT.",
                "Do not repeat the context and question.\nActual Task Output:",
            ),
        ],
        contains=('{"CONTEXT": {\'text\': \'C.\'}, "QUESTION": "", "ANSWER": A.}',),
    ),
    f"{CW}writer__writer.prompty": Loads(
        # research.json's web results have `name`, the template prints `item.title`
        sample_error="'dict object' has no attribute 'title'",
        variables=None,  # the sample with titles added (see _writer_variables)
        messages=[
            (
                "system",
                "You are an expert copywriter who can take research from a web researcher",
                "The article should be between 800 and 1200 words.",
            ),
            (
                "user",
                "Write a fun and engaging article that includes the research and product info",
                "This means you have not received feedback and you should not return that.",
            ),
        ],
        contains=(
            "## Web Search Results\n\nurl: https://reports.thedyrt.com/",
            "## TrailMaster X4 Tent",
        ),
    ),
    f"{CW}researcher__researcher.prompty": Loads(
        messages=[
            (
                "system",
                "# Researcher Agent\nAct as a researcher agent",
                "Turkish,\ttr-TR\nEnglish,\ten-US",
            ),
            (
                "user",
                "Can you find the latest camping trends and what folks are doing in the winter?",
            ),
        ],
        contains=("the user’s input", '    {"web": ['),
        model={("parameters", "tools", 0, "function", "name"): "find_information"},
    ),
    f"{CW}editor__editor.prompty": Loads(
        messages=[
            (
                "system",
                "# Editor Agent\nYou are an editor at a publishing company.",
                "**editorFeedback** field.",
            ),
            (
                "user",
                "Can you suggest a response to the feedback?\n# Article\n\n# Research Feedback",
            ),
        ],
        contains=('"researchFeedback": ,',),
        model={("parameters", "response_format", "type"): "json_object"},
    ),
    f"microsoft__promptflow/{PF}prompty_tool_with_chat_history.prompty": Refused(
        (
            (
                13,
                "${file:../datas/prompty_with_multi_tools.json} not found: "
                "prompts/datas/prompty_with_multi_tools.json does not exist",
            ),
        )
    ),
    f"microsoft__promptflow/{PF}prompty_with_chat_history.prompty": Loads(
        variables={"question": "what is the result of 3+3?"},
        messages=[
            (
                "system",
                "You are an AI assistant who helps people find information.",
                "   Assistant: The result of 2+2 is 4. It's a simple addition!",
            ),
            ("user", "what is the result of 3+3?"),
        ],
        contains=("You are helping John Doh to find", "   user: what is the result of 1+1?\n"),
    ),
    "microsoft__promptflow/examples__prompty__eval-apology__apology.prompty": Loads(
        messages=[
            (
                "system",
                "You are an AI tool that determines if, in a chat conversation, the assistant",
                "user: How many questions did John Doe ask?\nassistant: 1 question.\n\n**result**",
            )
        ],
        contains=(
            'Only provide a response of {"apology": 0} or {"apology": 1}',
            "user: where is the nearest coffee shop?\n",
            "assistant: I'm sorry, I don't know that. Would you like me to look it up for you?\n",
        ),
        model={("parameters", "response_format"): {"type": "json_object"}},
    ),
}


def feature_of(rel: str) -> str:
    """The feature name given to corpus file `rel` (its file name, lowercase)."""
    return Path(rel).stem.lower()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> LoadedRegistry:
    """The corpus as a registry: prompts/<corpus files>, one policy per .prompty file."""
    root = tmp_path_factory.mktemp("corpus")
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file():
            target = root / "prompts" / path.relative_to(CORPUS)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    (root / "policies").mkdir()
    for rel in EXPECTED:
        (root / "policies" / f"{feature_of(rel)}.yaml").write_text(
            f"prompt: {rel}\nmodels: [gpt-4o]\nmax_output_tokens: 100\n"
            "budget: {max_request_tokens: 100000}\ndegraded_message: x\n"
        )
    return RegistryLoader(DirTree(root), samples=False).load()


def test_the_table_names_every_prompty_file_of_the_corpus() -> None:
    on_disk = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.prompty")}
    assert on_disk == set(EXPECTED)
    assert len(on_disk) == 25


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_corpus_file(rel: str, registry: LoadedRegistry) -> None:
    expected = EXPECTED[rel]
    feature = feature_of(rel)
    problems = {(p.line, p.message) for p in registry.problems if p.feature == feature}
    if isinstance(expected, Refused):
        assert feature not in registry.features
        assert problems == set(expected.problems)
        assert all(p.file == f"prompts/{rel}" for p in registry.problems if p.feature == feature)
        return
    assert problems == set()
    loaded = registry.features[feature]
    prompt = loaded.prompt
    assert prompt.dialect == "prompty"
    if expected.inputs is not None:
        assert tuple(prompt.inputs) == expected.inputs
    for path, value in expected.model.items():
        node: Any = prompt.model
        for key in path:
            node = node[key]
        assert node == value, path
    variables = expected.variables
    if expected.sample_error is not None:
        assert prompt.sample is not None
        with pytest.raises(RenderError, match=expected.sample_error):
            loaded.compiled().render(prompt.sample)
        if variables is None:
            variables = _writer_variables(prompt.sample)
    if variables is None:
        assert prompt.sample is not None, "a file without a sample needs variables in the table"
        variables = prompt.sample
    messages = loaded.compiled().render(variables)
    assert [m.role for m in messages] == [m[0] for m in expected.messages]
    for got, want in zip(messages, expected.messages, strict=True):
        if len(want) == 2:
            assert got.content == want[1]
        else:
            assert got.content.startswith(want[1]), got.content[:200]
            assert got.content.endswith(want[2]), got.content[-200:]
    joined = "\n".join(m.content for m in messages)
    for text in expected.contains:
        assert text in joined
    if expected.names is not None:
        assert tuple(m.name for m in messages) == expected.names


def test_the_dangling_tools_file_is_the_only_thing_missing_from_the_promptflow_history() -> None:
    """With its tools file present, promptflow's `# role:` lines inside loops give the turns."""
    folder = "prompts/microsoft__promptflow"
    rel = f"{PF}prompty_tool_with_chat_history.prompty"
    files = {"prompts/datas/prompty_with_multi_tools.json": b'[{"type": "function"}]'}

    def read(path: str) -> bytes:
        path = clean_path(path)
        if path in files:
            return files[path]
        return (CORPUS / path.removeprefix("prompts/")).read_bytes()

    data = (CORPUS / "microsoft__promptflow" / rel).read_bytes()
    prompt = parse_prompty(data, f"{folder}/{rel}", f"microsoft__promptflow/{rel}", read=read)
    assert prompt.model is not None
    assert prompt.model["parameters"]["tools"] == [{"type": "function"}]
    call = {"id": "call_1", "type": "function", "function": {"name": "weather"}}
    history = [
        {
            "inputs": {"question": "Weather in Boston?"},
            "outputs": {"answer": "sunny", "llm_output": {"content": None, "tool_calls": [call]}},
        },
        {"inputs": {"question": "Thanks!"}, "outputs": {"answer": "", "llm_output": "Welcome"}},
    ]
    messages = compile_prompt(prompt, {}).render({"chat_history": history, "question": "Bye"})
    assert [(m.role, m.content) for m in messages] == [
        (
            "system",
            "Don't make assumptions about what values to plug into functions. "
            "Ask for clarification if a user request is ambiguous.",
        ),
        ("user", "Weather in Boston?"),
        ("assistant", f"## tool_calls:\n{[call]}"),
        ("tool", "## tool_call_id:\ncall_1\n## content:\nsunny\n\n\n\n}"),
        ("user", "Thanks!"),
        ("assistant", "Welcome}}\n\n}"),
        ("user", "Bye"),
    ]


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_a_truncated_corpus_file_is_a_problem_or_a_prompt_never_a_crash(rel: str) -> None:
    data = (CORPUS / rel).read_bytes()
    folder = CORPUS / rel.split("/")[0]

    def read(path: str) -> bytes:
        return (folder / clean_path(path).split("/", 2)[-1]).read_bytes()

    for cut in range(0, len(data), max(1, len(data) // 40)):
        try:
            parse_prompty(data[:cut], f"prompts/{rel}", rel, read=read)
        except PromptFileError as exc:
            assert all(p.file.startswith("prompts/") and p.line for p in exc.problems)
