// The `conversations` dataset through the real loader, with the `char` tokenizer keeping its
// markers whole: rendering, windows that never cross conversations and pad their end, targets
// only on the assistant's turns (or all), the system turn as the context, the seeded split by
// conversation (no conversation's text in two splits), system_message = "none" and "other", the
// errors naming file, line and key, and the shipped Shakespeare corpus.
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "lmrun/dataset.h"
#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

namespace fs = std::filesystem;
using lmrun::Batch;
using lmrun::Dataset;
using lmrun::kIgnoreTarget;
using lmrun::Split;
using lmrun::test::error_of;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using ::testing::HasSubstr;
using Params = std::map<std::string, lmrun::Value>;

std::shared_ptr<Dataset> make(const Params& params, std::uint64_t seed = 7) {
  return lmrun::test::plugin_registry().create<Dataset>(
      "conversations", lmrun::test::plugin_params(lmrun::Kind::kDataset, "conversations", params),
      lmrun::DatasetContext{seed});
}

// A char tokenizer given the dataset's markers (as the host does), fitted on `text`.
std::shared_ptr<lmrun::Tokenizer> char_tokenizer(const Dataset& data, const std::string& text) {
  auto tokenizer = lmrun::test::plugin_registry().create<lmrun::Tokenizer>(
      "char",
      lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "char",
                                 {{"special_tokens", std::vector<std::string>{"<pad>", "<unk>"}}}),
      lmrun::TokenizerContext{data.special_tokens()});
  tokenizer->fit(text);
  return tokenizer;
}

struct Prepared {
  std::shared_ptr<Dataset> data;
  std::shared_ptr<lmrun::Tokenizer> tokenizer;
};

// The dataset prepared with a tokenizer fitted on the whole file (so every split decodes).
Prepared prepared(const fs::path& file, Params params, std::uint64_t seed = 7) {
  params["path"] = file.string();
  Prepared p;
  p.data = make(params, seed);
  p.tokenizer = char_tokenizer(*p.data, lmrun::test::read_file(file) + p.data->training_text());
  p.data->prepare(*p.tokenizer);
  return p;
}

std::vector<std::int64_t> row_of(const at::Tensor& t, std::int64_t r, std::int64_t n = -1) {
  const at::Tensor row = t[r].contiguous();
  const std::int64_t size = n < 0 ? row.size(0) : n;
  return std::vector<std::int64_t>(row.data_ptr<std::int64_t>(),
                                   row.data_ptr<std::int64_t>() + size);
}

// Real positions of row r (the mask, or all of them without one).
std::int64_t real(const at::Tensor& mask, std::int64_t r, std::int64_t width) {
  return mask.defined() ? mask[r].sum().item<std::int64_t>() : width;
}

struct Example {
  std::string inputs;   // the real inputs, decoded
  std::string context;  // the system turn, decoded
  std::string learned;  // the targets that are not kIgnoreTarget, decoded in order
  std::int64_t length = 0;
};

std::vector<Example> examples(const Prepared& p, Split split) {
  const Batch b = p.data->slice(split, 0, p.data->num_examples(split));
  std::vector<Example> out;
  for (std::int64_t r = 0; r < b.inputs.size(0); ++r) {
    Example e;
    e.length = real(b.mask, r, b.inputs.size(1));
    e.inputs = p.tokenizer->decode(row_of(b.inputs, r, e.length));
    e.context = p.tokenizer->decode(
        row_of(b.context.tokens, r, real(b.context.mask, r, b.context.tokens.size(1))));
    std::vector<std::int64_t> learned;
    for (std::int64_t id : row_of(b.targets, r)) {
      if (id != kIgnoreTarget) learned.push_back(id);
    }
    e.learned = p.tokenizer->decode(learned);
    out.push_back(e);
  }
  return out;
}

const char* kThree =
    R"({"messages": [{"role": "system", "content": "You are JULIET."}, {"role": "user", "content": "Romeo?"}, {"role": "assistant", "content": "Here, love."}]})"
    "\n"
    R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Ho"}, {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Done"}]})"
    "\n\n"  // a blank line is skipped
    R"({"id": 3, "messages": [{"role": "system", "content": "You are ROMEO."}, {"role": "user", "content": "x", "name": "J"}, {"role": "assistant", "content": "y"}]})"
    "\n";

// ---------------------------------------------------------------------------------------------
// Rendering, windows, targets, context

TEST(Conversations, DeclaresItsMarkersAndChatFormatAtConstruction) {
  TempDir dir;
  write_file(dir / "c.jsonl", kThree);
  auto data = make({{"path", (dir / "c.jsonl").string()}, {"end_token", std::string("<END>")}});
  EXPECT_EQ(data->task(), lmrun::Task::kLanguageModel);
  EXPECT_EQ(data->special_tokens(),
            (std::vector<std::string>{"|system|", "|user|", "|assistant|", "|start|", "<END>"}));
  const lmrun::ChatFormat format = data->chat_format();
  ASSERT_TRUE(format.defined());
  EXPECT_EQ(format.render("user", "Hi"), "|user||start|Hi<END>");
  EXPECT_EQ(format.render("system", ""), "|system||start|<END>");
  EXPECT_EQ(data->sequence_length(), 256);
  EXPECT_TRUE(data->has_split(Split::kTrain));
}

TEST(Conversations, WindowsStayInsideAConversationAndPadTheirEnd) {
  TempDir dir;
  write_file(dir / "c.jsonl", kThree);
  auto p = prepared(dir / "c.jsonl", {{"val_fraction", 0.0},
                                      {"context_length", std::int64_t{8}},
                                      {"loss_on", std::string("all")}});
  const std::vector<std::string> rendered = {
      "|user||start|Romeo?|end||assistant||start|Here, love.|end|",
      "|user||start|Hi|end||assistant||start|Ho|end||user||start|Again|end||assistant||start|"
      "Done|end|",
      "|user||start|x|end||assistant||start|y|end|"};
  const std::vector<std::string> contexts = {"|system||start|You are JULIET.|end|",
                                             "|system||start||end|",  // none: the empty turn
                                             "|system||start|You are ROMEO.|end|"};
  // With loss_on = "all" every window is kept: in order, the windows of a conversation tile it.
  std::vector<std::string> joined(3), learned(3);
  std::size_t c = 0;
  const auto all = examples(p, Split::kTrain);
  ASSERT_EQ(p.data->num_examples(Split::kTrain), static_cast<std::int64_t>(all.size()));
  for (const Example& e : all) {
    while (c < 3 && e.context != contexts[c]) ++c;
    ASSERT_LT(c, 3u) << "a window whose context is no conversation's: " << e.context;
    EXPECT_LE(e.length, 8);
    joined[c] += e.inputs;
    learned[c] += e.learned;
  }
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(rendered[i]);
    // Inputs tile the rendering (the final |end| is an input only when a window has room for
    // it: it is always a target); every token after the first is a target exactly once.
    EXPECT_TRUE(joined[i] == rendered[i] || joined[i] + "|end|" == rendered[i]) << joined[i];
    EXPECT_EQ(learned[i], rendered[i].substr(std::string("|user|").size()));
  }
  // The last window of a conversation is padded: mask false, <pad> inputs, ignored targets.
  const Batch b = p.data->slice(Split::kTrain, 0, p.data->num_examples(Split::kTrain));
  ASSERT_TRUE(b.mask.defined());
  EXPECT_EQ(b.inputs.sizes(), (std::vector<std::int64_t>{b.inputs.size(0), 8}));
  EXPECT_TRUE(at::equal(b.inputs.masked_select(b.mask.logical_not()),
                        at::zeros({b.mask.logical_not().sum().item<std::int64_t>()}, at::kLong)));
  EXPECT_TRUE(b.targets.masked_select(b.mask.logical_not()).eq(kIgnoreTarget).all().item<bool>());
  // Targets are the inputs shifted by one inside a window.
  const at::Tensor both = b.mask.narrow(1, 1, 7) & b.targets.narrow(1, 0, 7).ne(kIgnoreTarget);
  EXPECT_TRUE(at::equal(b.targets.narrow(1, 0, 7).masked_select(both),
                        b.inputs.narrow(1, 1, 7).masked_select(both)));
}

TEST(Conversations, TheLossFallsOnTheAssistantsContentAndEndMarkerOnly) {
  TempDir dir;
  write_file(dir / "c.jsonl", kThree);
  auto p = prepared(dir / "c.jsonl", {{"val_fraction", 0.0}, {"context_length", std::int64_t{8}}});
  std::string learned;
  for (const Example& e : examples(p, Split::kTrain)) {
    learned += e.learned;
    // A window with nothing to learn is left out.
    EXPECT_FALSE(e.learned.empty()) << e.inputs;
  }
  EXPECT_EQ(learned, "Here, love.|end|Ho|end|Done|end|y|end|");
  // The first window of conversation 1 is all the user's turn: left out.
  EXPECT_EQ(examples(p, Split::kTrain).front().inputs.rfind("|user|", 0), std::string::npos);
}

TEST(Conversations, TheContextIsTheRenderedSystemTurnPaddedWithAMask) {
  TempDir dir;
  write_file(dir / "c.jsonl", kThree);
  auto p = prepared(dir / "c.jsonl", {{"val_fraction", 0.0}});
  // One window per conversation (256 tokens hold each): the contexts are of different lengths.
  ASSERT_EQ(p.data->num_examples(Split::kTrain), 3);
  const Batch b = p.data->slice(Split::kTrain, 0, 3);
  const std::string juliet = "|system||start|You are JULIET.|end|";
  ASSERT_TRUE(b.context.defined());
  // 3 markers and the 15 characters of "You are JULIET.": 18 ids, the longest.
  EXPECT_EQ(b.context.tokens.sizes(), (std::vector<std::int64_t>{3, 18}));
  ASSERT_TRUE(b.context.mask.defined());
  EXPECT_TRUE(at::equal(b.context.mask.sum(1), at::tensor({18, 3, 17}, at::kLong)));
  EXPECT_EQ(p.tokenizer->decode(row_of(b.context.tokens, 0)), juliet);
  EXPECT_EQ(p.tokenizer->decode(row_of(b.context.tokens, 1, 3)), "|system||start||end|");
  // The system turn is not in the example's own tokens.
  for (const Example& e : examples(p, Split::kTrain)) {
    EXPECT_EQ(e.inputs.find("|system|"), std::string::npos);
  }
  // Rows of one length: no context mask.
  const Batch one = p.data->slice(Split::kTrain, 0, 1);
  EXPECT_FALSE(one.context.mask.defined());
  EXPECT_EQ(one.context.tokens.sizes(), (std::vector<std::int64_t>{1, 18}));
  // training_text: the train split rendered, system turns included, one conversation a line.
  EXPECT_EQ(p.data->training_text(),
            juliet + "|user||start|Romeo?|end||assistant||start|Here, love.|end|\n" +
                "|system||start||end||user||start|Hi|end||assistant||start|Ho|end||user||start|"
                "Again|end||assistant||start|Done|end|\n" +
                "|system||start|You are ROMEO.|end||user||start|x|end||assistant||start|y|end|\n");
}

TEST(Conversations, SystemMessageNoneGivesEveryConversationTheEmptySystemTurn) {
  TempDir dir;
  write_file(dir / "c.jsonl", kThree);
  auto p =
      prepared(dir / "c.jsonl", {{"val_fraction", 0.0}, {"system_message", std::string("none")}});
  for (const Example& e : examples(p, Split::kTrain)) EXPECT_EQ(e.context, "|system||start||end|");
}

// n conversations, one per character of `names` in turn, each with its own text.
std::string cast(int n, const std::vector<std::string>& names) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    text += R"({"messages": [{"role": "system", "content": "You are )" +
            names[static_cast<std::size_t>(i) % names.size()] +
            R"(."}, {"role": "user", "content": "question )" + std::to_string(i) +
            R"( asked"}, {"role": "assistant", "content": "answer )" + std::to_string(i) +
            R"( given"}]})" + "\n";
  }
  return text;
}

TEST(Conversations, SystemMessageOtherTakesAnotherCharactersMessageSeeded) {
  TempDir dir;
  write_file(dir / "c.jsonl", cast(30, {"A", "B", "C"}));
  auto contexts = [&](std::uint64_t seed) {
    auto p = prepared(dir / "c.jsonl",
                      {{"val_fraction", 0.0}, {"system_message", std::string("other")}}, seed);
    std::vector<std::string> out;
    for (const Example& e : examples(p, Split::kTrain)) out.push_back(e.context);
    return out;
  };
  const std::vector<std::string> other = contexts(7);
  ASSERT_EQ(other.size(), 30u);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < other.size(); ++i) {
    const std::string own = std::string("|system||start|You are ") + "ABC"[i % 3] + ".|end|";
    EXPECT_NE(other[i], own) << i;
    EXPECT_THAT(other[i],
                ::testing::MatchesRegex("\\|system\\|\\|start\\|You are [ABC]\\.\\|end\\|"));
    seen.insert(other[i]);
  }
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(contexts(7), other);  // deterministic
  EXPECT_NE(contexts(8), other);  // and seeded

  write_file(dir / "one.jsonl", cast(4, {"A"}));
  EXPECT_THAT(
      error_of([&] {
        make({{"path", (dir / "one.jsonl").string()}, {"system_message", std::string("other")}});
      }),
      HasSubstr("two different system messages"));
}

// ---------------------------------------------------------------------------------------------
// Splits and batches

TEST(Conversations, TheSplitIsByConversationSeededAndNoTextIsInTwoSplits) {
  TempDir dir;
  const std::string file_text = cast(40, {"A", "B", "C", "D"});
  write_file(dir / "c.jsonl", file_text);
  const Params params = {{"val_fraction", 0.2},
                         {"test_fraction", 0.1},
                         {"context_length", std::int64_t{16}},
                         {"loss_on", std::string("all")}};
  auto p = prepared(dir / "c.jsonl", params);
  // Each split's windows in order, joined: the conversations they hold, whole.
  std::map<Split, std::string> text;
  for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
    ASSERT_TRUE(p.data->has_split(s));
    for (const Example& e : examples(p, s)) text[s] += e.inputs;
  }
  int in[3] = {0, 0, 0};
  std::map<int, Split> split_of;
  for (int i = 0; i < 40; ++i) {
    const std::string conversation = "|user||start|question " + std::to_string(i) +
                                     " asked|end||assistant||start|answer " + std::to_string(i) +
                                     " given|end|";
    int splits = 0;
    for (Split s : {Split::kTrain, Split::kVal, Split::kTest}) {
      // Neither whole nor in part ("question 7 " never in another split's text).
      const bool whole = text[s].find(conversation) != std::string::npos;
      const bool part = text[s].find("question " + std::to_string(i) + " ") != std::string::npos ||
                        text[s].find("answer " + std::to_string(i) + " ") != std::string::npos;
      EXPECT_EQ(whole, part) << i;
      if (whole) {
        ++splits;
        ++in[static_cast<int>(s)];
        split_of[i] = s;
      }
    }
    EXPECT_EQ(splits, 1) << "conversation " << i << " is in " << splits << " splits";
  }
  EXPECT_EQ(in[0], 28);  // train
  EXPECT_EQ(in[1], 8);   // val: 0.2 of 40
  EXPECT_EQ(in[2], 4);   // test: 0.1 of 40
  // training_text is the train split's alone.
  const std::string training = p.data->training_text();
  for (const auto& [i, s] : split_of) {
    const bool in_training =
        training.find("question " + std::to_string(i) + " asked") != std::string::npos;
    EXPECT_EQ(in_training, s == Split::kTrain) << i;
  }
  // The same seed splits the same way; another seed (the experiment's or `seed`) does not.
  Params with_path = params;
  with_path["path"] = (dir / "c.jsonl").string();
  EXPECT_EQ(make(with_path, 7)->training_text(), training);
  EXPECT_NE(make(with_path, 8)->training_text(), training);
  with_path["seed"] = std::int64_t{8};
  EXPECT_EQ(make(with_path, 7)->training_text(), make(with_path, 1)->training_text());
  EXPECT_EQ(make(with_path, 7)->training_text(), make(Params(with_path), 8)->training_text());
}

TEST(Conversations, SampleIsDeterministicInTheGeneratorAndSlicesInOrder) {
  TempDir dir;
  write_file(dir / "c.jsonl", cast(20, {"A", "B"}));
  auto p = prepared(dir / "c.jsonl", {{"context_length", std::int64_t{12}}});
  auto generator = [](std::uint64_t seed) {
    return at::make_generator<at::CPUGeneratorImpl>(seed);
  };
  at::Generator g1 = generator(3), g2 = generator(3);
  const Batch a = p.data->sample(Split::kTrain, 6, g1);
  const Batch b = p.data->sample(Split::kTrain, 6, g2);
  EXPECT_EQ(a.inputs.sizes(), (std::vector<std::int64_t>{6, 12}));
  EXPECT_EQ(a.targets.sizes(), (std::vector<std::int64_t>{6, 12}));
  EXPECT_EQ(a.context.tokens.size(0), 6);
  EXPECT_TRUE(at::equal(a.inputs, b.inputs));
  EXPECT_TRUE(at::equal(a.targets, b.targets));
  EXPECT_TRUE(at::equal(a.context.tokens, b.context.tokens));
  const std::int64_t n = p.data->num_examples(Split::kVal);
  ASSERT_GT(n, 2);
  const Batch all = p.data->slice(Split::kVal, 0, n);
  const Batch tail = p.data->slice(Split::kVal, 1, n);
  EXPECT_TRUE(at::equal(all.inputs.narrow(0, 1, n - 1), tail.inputs));
  EXPECT_FALSE(p.data->has_split(Split::kTest));
  EXPECT_THAT(error_of([&] {
                make({{"path", (dir / "c.jsonl").string()}})->num_examples(Split::kTrain);
              }),
              HasSubstr("before prepare()"));
  // save(): which line went to which split.
  TempDir out;
  p.data->save(out.path());
  const std::string splits = lmrun::test::read_file(out / "splits.json");
  EXPECT_THAT(splits, HasSubstr("\"train\": ["));
  EXPECT_THAT(splits, HasSubstr("\"line\": "));
}

// ---------------------------------------------------------------------------------------------
// Errors, at construction (which `lmrun check` runs), naming the file, the line and the key

TEST(Conversations, BadLinesAreErrorsNamingTheFileTheLineAndTheKey) {
  TempDir dir;
  const std::string good =
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})";
  auto error_for = [&](const std::string& second_line) {
    const fs::path file = dir / "bad.jsonl";
    write_file(file, good + "\n" + second_line + "\n");
    return error_of([&] { make({{"path", file.string()}}); });
  };
  const std::string where = (dir / "bad.jsonl").string() + ":2: ";
  EXPECT_THAT(error_for(R"({"messages": [)"), HasSubstr(where + "not JSON"));
  EXPECT_THAT(error_for("[1, 2]"), HasSubstr(where + "expected a JSON object, found array"));
  EXPECT_THAT(error_for(R"({"turns": []})"),
              HasSubstr(where + "the object has no key \"messages\""));
  EXPECT_THAT(error_for(R"({"messages": {}})"),
              HasSubstr(where + "key messages: expected an array, found object"));
  EXPECT_THAT(
      error_for(
          R"({"messages": [{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]})"),
      HasSubstr(where + "key messages[1].role: unknown role \"narrator\""));
  EXPECT_THAT(error_for(R"({"messages": [{"role": "user", "content": "a"}]})"),
              HasSubstr(where + "key messages: no assistant message"));
  EXPECT_THAT(error_for(R"({"messages": []})"), HasSubstr(where + "key messages: no assistant"));
  EXPECT_THAT(error_for(R"({"messages": [{"role": "user", "content": 3}]})"),
              HasSubstr(where + "key messages[0].content: missing or not a string"));
  EXPECT_THAT(error_for(R"({"messages": ["hi"]})"),
              HasSubstr(where + "key messages[0]: expected an object"));
  EXPECT_THAT(
      error_for(
          R"({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}, {"role": "assistant", "content": "c"}]})"),
      HasSubstr(where + "key messages[1].role: a system message comes first"));
  EXPECT_THAT(
      error_for(
          R"({"messages": [{"role": "user", "content": "a|end|"}, {"role": "assistant", "content": "c"}]})"),
      HasSubstr(where + "key messages[0].content: holds the markup token \"|end|\""));

  write_file(dir / "empty.jsonl", "\n  \n");
  EXPECT_THAT(error_of([&] {
                make({{"path", (dir / "empty.jsonl").string()}});
              }),
              HasSubstr((dir / "empty.jsonl").string() + " is empty"));
  EXPECT_THAT(error_of([&] {
                make({{"path", (dir / "missing.jsonl").string()}});
              }),
              HasSubstr((dir / "missing.jsonl").string() + " does not exist"));
}

TEST(Conversations, ParametersThatCannotWorkAreErrors) {
  TempDir dir;
  write_file(dir / "c.jsonl", kThree);
  const std::string path = (dir / "c.jsonl").string();
  EXPECT_THAT(error_of([&] {
                make({{"path", path}, {"start_token", std::string("|user|")}});
              }),
              HasSubstr("start_token and user_token are both \"|user|\""));
  EXPECT_THAT(error_of([&] {
                make({{"path", path}, {"end_token", std::string()}});
              }),
              HasSubstr("end_token is empty"));
  EXPECT_THAT(error_of([&] {
                make({{"path", path}, {"val_fraction", 0.5}, {"test_fraction", 0.5}});
              }),
              HasSubstr("must be below 1"));
  EXPECT_THAT(error_of([&] {
                make({{"path", path}, {"val_fraction", 0.5}, {"test_fraction", 0.4}});
              }),
              HasSubstr("leave none to train on"));
}

// ---------------------------------------------------------------------------------------------
// The shipped corpus

TEST(Conversations, TheShippedShakespeareChatLoadsAndTrainsOnTheAssistant) {
  const fs::path file = lmrun::test::source_dir() / "data/shakespeare_chat/conversations.jsonl";
  auto data = make({{"path", file.string()}, {"context_length", std::int64_t{128}}});
  EXPECT_TRUE(data->has_split(Split::kVal));
  const std::string text = data->training_text();
  EXPECT_THAT(text, HasSubstr("|system||start|You are JULIET.|end|"));
  // Every system message names the character; no speaker line ("ROMEO:") is left in a message.
  std::istringstream lines(text);
  const std::regex speaker_line("^[A-Z][A-Z ]+:$");
  int conversations = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("|system||start|You are ", 0) == 0) ++conversations;
    EXPECT_FALSE(std::regex_match(line, speaker_line)) << line;
  }
  EXPECT_GT(conversations, 1000);
  auto tokenizer = char_tokenizer(*data, text);
  data->prepare(*tokenizer);
  EXPECT_GT(data->num_examples(Split::kTrain), 1000);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  const Batch b = data->sample(Split::kVal, 4, g);
  EXPECT_EQ(b.inputs.sizes(), (std::vector<std::int64_t>{4, 128}));
  EXPECT_TRUE(b.targets.ne(kIgnoreTarget).any().item<bool>());
}

}  // namespace
