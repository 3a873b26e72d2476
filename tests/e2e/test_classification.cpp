// A text classifier end to end, on a small synthetic task it learns in seconds: lmrun predict on
// new texts and files, lmrun eval's metrics and confusion matrix, and how the two agree.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <regex>
#include <sstream>

#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::read_file;
using lmrun::test::run_lmrun;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using testing::HasSubstr;

namespace {

// Reviews built from a positive and a negative word pool plus neutral filler, so that the label
// is learnable but not from any one position. Labels are names ("neg", "pos"), not numbers.
struct Example {
  std::string text, label;
};

std::vector<Example> reviews(int n, unsigned seed) {
  const std::vector<std::string> good = {"great", "lovely", "superb", "tasty", "friendly"};
  const std::vector<std::string> bad = {"awful", "cold", "rude", "bland", "dirty"};
  const std::vector<std::string> filler = {"the", "food", "was", "and", "service", "place", "our"};
  std::vector<Example> out;
  unsigned state = seed;
  auto next = [&](std::size_t range) {
    state = state * 1103515245u + 12345u;
    return static_cast<std::size_t>((state >> 16) % range);
  };
  for (int i = 0; i < n; ++i) {
    const bool positive = next(2) == 1;
    std::string text;
    const std::size_t words = 3 + next(6);
    for (std::size_t w = 0; w < words; ++w) {
      const auto& pool = next(3) == 0 ? (positive ? good : bad) : filler;
      text += (w ? " " : "") + pool[next(pool.size())];
    }
    text += " " + (positive ? good : bad)[next(5)];
    out.push_back({text, positive ? "pos" : "neg"});
  }
  return out;
}

std::string tsv(const std::vector<Example>& examples) {
  std::string out = "sentence\tlabel\n";
  for (const auto& e : examples) out += e.text + "\t" + e.label + "\n";
  return out;
}

// A trained run folder under `dir`, its test file's examples in `test`.
fs::path train_classifier(const TempDir& dir, std::vector<Example>& test) {
  test = reviews(60, 7);
  write_file(dir / "train.tsv", tsv(reviews(400, 3)));
  write_file(dir / "test.tsv", tsv(test));
  write_file(dir / "clf.toml", R"([experiment]
name = "clf"
seed = 3
out_dir = "run"
[data]
type = "text_classification"
train = "train.tsv"
test = "test.tsv"
val_fraction = 0.1
max_len = 32
[tokenizer]
type = "word"
[model]
type = "rnn_classifier"
cell = "gru"
n_embd = 16
n_hidden = 16
pooling = "mean"
[optimizer]
type = "adamw"
lr = 1e-2
[train]
batch_size = 16
max_steps = 60
eval_interval = 30
log_interval = 30
[[metrics]]
type = "accuracy"
)");
  const auto result = run_lmrun({"clf.toml"}, dir.path());
  EXPECT_EQ(result.exit_code, 0) << result.output;
  return dir / "run";
}

double number_after(const std::string& text, const std::string& key) {
  std::smatch match;
  const std::regex pattern(key + " +([0-9.]+)");
  if (!std::regex_search(text, match, pattern)) {
    ADD_FAILURE() << "no " << key << " in:\n" << text;
    return -1;
  }
  return std::stod(match[1]);
}

struct Prediction {
  std::string label;
  double confidence = 0, probability_sum = 0;
};

std::vector<Prediction> parse_jsonl(const std::string& text) {
  std::vector<Prediction> out;
  std::istringstream in(text);
  const std::regex label("\"label\": \"([a-z]+)\", \"confidence\": ([-0-9.e]+)");
  const std::regex probability("\"(neg|pos)\": ([-0-9.e]+)");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("{\"text\"", 0) != 0) continue;  // lmrun's note on stderr
    std::smatch match;
    EXPECT_TRUE(std::regex_search(line, match, label)) << line;
    Prediction p{match[1], std::stod(match[2]), 0};
    const std::string tail = line.substr(line.find("\"probabilities\""));
    for (std::sregex_iterator it(tail.begin(), tail.end(), probability), end; it != end; ++it)
      p.probability_sum += std::stod((*it)[2]);
    out.push_back(p);
  }
  return out;
}

}  // namespace

TEST(Predict, LabelsTextsAndFilesAndAgreesWithEval) {
  TempDir dir;
  std::vector<Example> test;
  const fs::path run = train_classifier(dir, test);
  ASSERT_TRUE(fs::exists(run / "checkpoints" / "last"));

  // eval: every metric, and the confusion matrix with the label names saved with the run.
  const auto eval =
      run_lmrun({"eval", run.string(), "--split", "test", "--output", (dir / "eval.json").string()},
                dir.path());
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  EXPECT_THAT(eval.output, HasSubstr("confusion matrix (rows: true label, columns: predicted)"));
  EXPECT_THAT(eval.output, testing::ContainsRegex("total +[0-9]+ +[0-9]+ +60\n"));
  EXPECT_THAT(eval.output, HasSubstr("test_examples  60\n"));  // a count, by its name
  EXPECT_THAT(eval.output, testing::ContainsRegex("test_accuracy +[01]\\.[0-9]{6}\n"));
  const double accuracy = number_after(eval.output, "test_accuracy");
  EXPECT_GT(accuracy, 0.8) << eval.output;  // the task is easy: the model learned it
  const std::string report = read_file(dir / "eval.json");
  EXPECT_THAT(report, HasSubstr("\"class_names\": [\"neg\", \"pos\"]"));
  EXPECT_THAT(report, HasSubstr("\"test_accuracy\": "));

  // predict over the test file's texts gives eval's accuracy: the same encoding and model.
  std::string texts;
  for (const auto& e : test) texts += e.text + "\n";
  write_file(dir / "texts.txt", texts);
  auto predict =
      run_lmrun({"predict", run.string(), "--input", "texts.txt", "--output", "predictions.jsonl"},
                dir.path());
  ASSERT_EQ(predict.exit_code, 0) << predict.output;
  EXPECT_THAT(predict.output, HasSubstr("60 texts labelled"));
  const auto predictions = parse_jsonl(read_file(dir / "predictions.jsonl"));
  ASSERT_EQ(predictions.size(), test.size());
  int right = 0;
  for (std::size_t i = 0; i < test.size(); ++i) {
    right += predictions[i].label == test[i].label;
    EXPECT_GE(predictions[i].confidence, 0.5);
    EXPECT_NEAR(predictions[i].probability_sum, 1.0, 1e-6);
  }
  EXPECT_NEAR(static_cast<double>(right) / static_cast<double>(test.size()), accuracy, 1e-6);

  // --text, repeatable, in order, to stdout; an empty text and invalid UTF-8 still get a label.
  predict = run_lmrun({"predict", run.string(), "--text", "superb lovely tasty great", "--text",
                       "rude awful dirty cold", "--text", "", "--text", "bad \xff byte"},
                      dir.path());
  ASSERT_EQ(predict.exit_code, 0) << predict.output;
  const auto some = parse_jsonl(predict.output);
  ASSERT_EQ(some.size(), 4u) << predict.output;
  EXPECT_EQ(some[0].label, "pos");
  EXPECT_EQ(some[1].label, "neg");
  EXPECT_THAT(predict.output, HasSubstr("{\"text\": \"bad \xEF\xBF\xBD byte\""));

  // A text longer than any training text (at most 9 words) is read up to max_len (32 words) as
  // the dataset reads it, so its sentiment words at positions 13-16 count; white space around it
  // and words past max_len change nothing.
  const auto filler = [](int words) {
    std::string text;
    for (int i = 0; i < words; ++i) text += std::string(i ? " " : "") + (i % 2 ? "food" : "the");
    return text;
  };
  std::string tail;
  for (int i = 0; i < 40; ++i) tail += " awful";
  const std::string long_text = filler(12) + " superb lovely tasty great " + filler(16);
  predict = run_lmrun({"predict", run.string(), "--text", long_text, "--text",
                       "  " + long_text + " \t", "--text", long_text + tail, "--text", filler(9)},
                      dir.path());
  ASSERT_EQ(predict.exit_code, 0) << predict.output;
  const auto longer = parse_jsonl(predict.output);
  ASSERT_EQ(longer.size(), 4u) << predict.output;
  EXPECT_EQ(longer[0].label, "pos") << predict.output;
  EXPECT_DOUBLE_EQ(longer[1].confidence, longer[0].confidence);
  EXPECT_DOUBLE_EQ(longer[2].confidence, longer[0].confidence);
  EXPECT_NE(longer[3].confidence, longer[0].confidence);

  // Nothing to label, and a file that is not there: errors that say what to pass.
  predict = run_lmrun({"predict", run.string()}, dir.path());
  EXPECT_EQ(predict.exit_code, 2);  // the command line's mistake
  EXPECT_THAT(predict.output, HasSubstr("pass --text"));
  predict = run_lmrun({"predict", run.string(), "--input", "missing.txt"}, dir.path());
  EXPECT_EQ(predict.exit_code, 1);
  EXPECT_THAT(predict.output, HasSubstr("--input missing.txt does not exist"));
  predict = run_lmrun({"predict", run.string(), "--input", "."}, dir.path());
  EXPECT_EQ(predict.exit_code, 1);
  EXPECT_THAT(predict.output, HasSubstr("--input . is a folder"));
  write_file(dir / "empty.txt", "");
  predict = run_lmrun({"predict", run.string(), "--input", "empty.txt"}, dir.path());
  EXPECT_EQ(predict.exit_code, 0) << predict.output;
  EXPECT_THAT(predict.output, HasSubstr("warning: --input empty.txt holds no texts"));

  // A dataset whose classes are not the ones the model learned (here one more, so the ids
  // shift) is refused, not scored against the wrong ids.
  write_file(dir / "three.tsv", tsv(reviews(40, 5)) + "so so\tmeh\n");
  auto mismatch = run_lmrun({"eval", run.string(), "--set", "data.train=three.tsv"}, dir.path());
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_THAT(mismatch.output, HasSubstr("was trained on the classes [neg, pos], and the dataset "
                                         "now gives [meh, neg, pos]"));
  std::string renamed = tsv(reviews(40, 5));
  for (auto at = renamed.find("\tneg"); at != std::string::npos; at = renamed.find("\tneg"))
    renamed.replace(at, 4, "\tbad");
  write_file(dir / "renamed.tsv", renamed);
  mismatch = run_lmrun(
      {"eval", run.string(), "--set", "data.train=renamed.tsv", "--set", "data.test=renamed.tsv"},
      dir.path());
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_THAT(mismatch.output, HasSubstr("and the dataset now gives [bad, pos]"));
  // A checkpoint that names a class twice is damaged.
  const fs::path state = run / "checkpoints" / "last" / "state.toml";
  std::string text = read_file(state);
  const auto names = text.find("class_names = [");
  ASSERT_NE(names, std::string::npos) << text;
  text.replace(names, text.find(']', names) - names + 1, "class_names = [\"neg\", \"neg\"]");
  write_file(state, text);
  predict = run_lmrun({"predict", run.string(), "--text", "great"}, dir.path());
  EXPECT_EQ(predict.exit_code, 1);
  EXPECT_THAT(predict.output, HasSubstr("names class 'neg' twice (0 and 1)"));
}

TEST(Inspect, LayersMemoryWeightsAndActivationsOfAClassifier) {
  TempDir dir;
  std::vector<Example> test;
  const fs::path run = train_classifier(dir, test);
  const auto inspect = run_lmrun({"inspect", run.string(), "--split", "test"}, dir.path());
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  const std::string& out = inspect.output;
  // Every parameter with its shape (n_embd 16, GRU 16 units both ways: 3 gates of 16 = 48 rows).
  EXPECT_THAT(out, testing::ContainsRegex("wte.weight +\\[[0-9]+, 16\\] +[0-9,]+  yes"));
  EXPECT_THAT(out, testing::ContainsRegex("rnn.weight_ih_l0_reverse +\\[48, 16\\] +768  yes"));
  EXPECT_THAT(out, testing::ContainsRegex("head.weight +\\[2, 32\\] +64  yes"));
  // Gradients take what the (all trainable) parameters take; AdamW's state is on disk.
  std::smatch parameters, gradients;
  ASSERT_TRUE(std::regex_search(out, parameters, std::regex("parameters +([0-9.]+ MiB)")));
  ASSERT_TRUE(std::regex_search(out, gradients, std::regex("gradients +([0-9.]+ MiB)")));
  EXPECT_EQ(parameters[1], gradients[1]);
  EXPECT_THAT(out, HasSubstr("(adamw: the checkpoint's optimizer.pt)"));
  EXPECT_THAT(out, testing::ContainsRegex("head.bias +[-0-9.e]+ +[0-9.e]+ +[-0-9.e]+ +[-0-9.e]+ "
                                          "+0.0%  [^\n]+\n"));
  // The model's own stages on 8 test texts (batch_size 16, capped), padding left out.
  EXPECT_THAT(out, HasSubstr("activations on 8 test examples"));
  EXPECT_THAT(out, HasSubstr("padded positions left out"));
  for (const char* stage : {"embeddings", "rnn", "pooled", "logits"})
    EXPECT_THAT(out, testing::ContainsRegex(std::string("\n  ") + stage + " +\\[8")) << stage;
}

TEST(CrossValidation, TrainsEachFoldAndReportsMeanAndStd) {
  TempDir dir;
  std::vector<Example> test;
  train_classifier(dir, test);  // writes the data and clf.toml (and a run we do not need)
  const auto result =
      run_lmrun({"clf.toml", "--set", "data.folds=3", "--set", "data.val_fraction=0.0", "--set",
                 "train.max_steps=20", "--set", "experiment.out_dir=cv"},
                dir.path());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  for (const char* fold : {"fold-0", "fold-1", "fold-2"})
    EXPECT_TRUE(fs::exists(dir / "cv" / fold / "checkpoints" / "last")) << fold;
  EXPECT_THAT(result.output, HasSubstr("==== fold 3/3: val is fold 2"));
  EXPECT_THAT(result.output, HasSubstr("cross-validation, 3 folds"));
  // val_accuracy's mean and sample std agree with its three fold values.
  const std::string csv = read_file(dir / "cv" / "cross_validation.csv");
  std::smatch row;
  ASSERT_TRUE(std::regex_search(
      csv, row,
      std::regex("\nval_accuracy,([-0-9.e]+),([-0-9.e]+),3,([-0-9.e]+),([-0-9.e]+),([-0-9.e]+)\n")))
      << csv;
  const double f0 = std::stod(row[3]), f1 = std::stod(row[4]), f2 = std::stod(row[5]);
  const double mean = (f0 + f1 + f2) / 3;
  const double sd = std::sqrt(
      ((f0 - mean) * (f0 - mean) + (f1 - mean) * (f1 - mean) + (f2 - mean) * (f2 - mean)) / 2);
  EXPECT_NEAR(std::stod(row[1]), mean, 1e-12);
  EXPECT_NEAR(std::stod(row[2]), sd, 1e-12);
  EXPECT_THAT(csv, HasSubstr("\ntest_accuracy,"));  // the shared test file, per fold
  EXPECT_THAT(read_file(dir / "cv" / "cross_validation.json"), HasSubstr("\"folds\": 3"));
  // summary.json's final holds the means, as a run's holds its last metrics (sweeps read it).
  const std::string summary = read_file(dir / "cv" / "summary.json");
  EXPECT_THAT(summary, HasSubstr("\"val_accuracy\": " + std::string(row[1])));
  EXPECT_THAT(summary, HasSubstr("\"folds\": 3"));

  // The same folder again needs --force; a cross-validation does not resume.
  auto again = run_lmrun({"clf.toml", "--set", "data.folds=3", "--set", "data.val_fraction=0.0",
                          "--set", "experiment.out_dir=cv"},
                         dir.path());
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.output, HasSubstr("already exists"));
}
