using System.Reflection;
using System.Text.Json.Serialization;
using RetriBooru.Cli;
using RetriBooru.Cli.Commands;
using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Metrics;
using RetriBooru.Settings;
using Spectre.Console.Cli;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>One definition per setting: each record field is a spec path and a CLI flag of the same name with the same help and default.</summary>
public class SettingsTests
{
    public static TheoryData<Type, string, Type> Records => new()
    {
        { typeof(BaseTrainingOptions), "base", typeof(TrainBaseCommand.Settings) },
        { typeof(ReferenceTrainingOptions), "train", typeof(TrainCommand.Settings) },
        { typeof(EvaluationSettings), "evaluate", typeof(EvaluateCommand.Settings) },
        { typeof(Data.DatasetSettings), "dataset", typeof(DatasetSynthCommand.Settings) },
    };

    [Theory]
    [MemberData(nameof(Records))]
    public void Every_setting_has_a_spec_path_a_cli_flag_of_the_same_name_and_help(Type record, string section, Type verb)
    {
        var specProperty = typeof(ExperimentSpec).GetProperties().Single(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name == section);
        Assert.Equal(record, specProperty.PropertyType);
        var fields = SettingFields.Of(record);
        Assert.NotEmpty(fields);
        foreach (var field in fields)
        {
            Assert.Matches("^[a-z][a-z0-9_]*$", field.JsonName);
            Assert.False(string.IsNullOrWhiteSpace(field.Help), $"{record.Name}.{field.Property.Name} has no help");
            var option = SettingsBinder.OptionProperty(verb, field.Flag);
            if (field.Setting.SpecOnly is { } why)
            {
                Assert.False(string.IsNullOrWhiteSpace(why));
                Assert.Null(option);
                continue;
            }
            Assert.True(option is not null, $"{section}.{field.JsonName} has no {field.Flag} on {verb.DeclaringType!.Name}");
            var help = option!.GetCustomAttribute<SettingHelpAttribute>();
            Assert.True(help is not null && help.Record == record && help.Property == field.Property.Name, $"{field.Flag} does not take its help from {record.Name}.{field.Property.Name}");
            Assert.StartsWith(Spectre.Console.Markup.Escape(field.Help), help.Description);
            // Null until given, so the record's default applies; domain words come as text and are parsed with a did-you-mean.
            var expected = field.ValueType.IsEnum || field.ValueType == typeof(string) ? typeof(string) : typeof(Nullable<>).MakeGenericType(field.ValueType);
            Assert.True(option.PropertyType == expected, $"{field.Flag} is {option.PropertyType.Name}, expected {expected.Name}");
        }
        // And the other way: every option that says it is a setting has that setting's flag among its names.
        foreach (var property in verb.GetProperties().Where(p => p.GetCustomAttribute<SettingHelpAttribute>() is not null))
        {
            var help = property.GetCustomAttribute<SettingHelpAttribute>()!;
            var field = SettingFields.Field(help.Record, help.Property);
            Assert.Contains(field.Flag, property.GetCustomAttribute<CommandOptionAttribute>()!.LongNames.Select(n => "--" + n));
        }
    }

    [Theory]
    [InlineData("train")]
    [InlineData("train-base")]
    [InlineData("evaluate")]
    [InlineData("run")]
    [InlineData("sample")]
    [InlineData("dataset synth")]
    [InlineData("model diagnose")]
    public void Help_renders_every_option_with_its_default(string verb)
    {
        // Descriptions are Spectre markup: a help text or default in brackets once made `train --help` fail.
        var console = new TestConsole().Width(250);
        Assert.Equal(0, CliApp.Run([.. verb.Split(' '), "--help"], console));
        Assert.Contains("OPTIONS:", console.Output);
        if (verb is "train" or "train-base" or "evaluate") Assert.Contains("(default: ", console.Output);
    }

    static T Parse<T>(params string[] args) where T : CommandSettings
    {
        var console = new TestConsole().Width(200);
        var settings = CliApp.Parse(args, console);
        Assert.True(settings is T, console.Output);
        return (T)settings!;
    }

    [Fact]
    public void Train_and_run_resolve_identical_options_from_identical_inputs()
    {
        var spec = SpecLoader.Parse("""
            { "name": "x", "seed": 3,
              "train": { "steps": 300, "batch_size": 8, "learning_rate": 0.001, "prompt_view": "context", "masked_loss": false,
                         "min_snr_gamma": 0, "background_weight": 0.5, "learning_rate_schedule": "cosine", "grad_clip": 0.5 } }
            """, "inline");
        var runTrainer = ExperimentRunner.ReferenceTrainerOptions(spec, spec.Train, "retrinet", "b");
        var cli = Parse<TrainCommand.Settings>("train", "--data", "d", "--base", "b", "--out", "o", "--steps", "300", "--batch-size", "8", "--learning-rate", "0.001",
            "--prompt-view", "context", "--masked-loss", "false", "--min-snr-gamma", "0", "--background-weight", "0.5", "--learning-rate-schedule", "cosine", "--grad-clip", "0.5");
        Assert.Equal(spec.Train, cli.Training());
        Assert.Equal(runTrainer, cli.Training().Trainer(runTrainer.Seed));
        Assert.Equal(30, runTrainer.WarmupSteps); // min(50, steps / 10), the same for both verbs
        Assert.Equal(0.5, runTrainer.GradClip);
        // Old short flags are aliases of the same settings.
        var aliases = Parse<TrainCommand.Settings>("train", "--data", "d", "--base", "b", "--out", "o", "--steps", "300", "--batch", "8", "--lr", "0.001",
            "--prompt-view", "context", "--no-mask", "--min-snr-gamma", "0", "--background-weight", "0.5", "--lr-schedule", "cosine", "--grad-clip", "0.5");
        Assert.Equal(spec.Train, aliases.Training());
        // Nothing given: both are the record's defaults.
        Assert.Equal(new ReferenceTrainingOptions(), Parse<TrainCommand.Settings>("train", "--data", "d", "--base", "b", "--out", "o").Training());
        Assert.Equal(new ReferenceTrainingOptions(), SpecLoader.Parse("""{ "name": "x" }""", "inline").Train);
    }

    [Fact]
    public void Train_base_and_run_resolve_identical_options_from_identical_inputs()
    {
        var spec = SpecLoader.Parse("""{ "name": "x", "base": { "steps": 400, "batch_size": 4, "ema": 0.99, "grad_clip": 0.5, "patch_size": 1, "channels": "16,32,32" } }""", "inline");
        var cli = Parse<TrainBaseCommand.Settings>("train-base", "--data", "d", "--out", "o", "--steps", "400", "--batch-size", "4", "--ema", "0.99", "--grad-clip", "0.5",
            "--patch-size", "1", "--channels", "16,32,32");
        Assert.Equal(spec.Base, cli.Training());
        Assert.Equal(spec.Base.Trainer(5), cli.Training().Trainer(5));
        Assert.Equal(40, spec.Base.Trainer(5).WarmupSteps);
        Assert.Equal(spec.Base.FreshModelConfig().Unet.BlockOutChannels, cli.Training().FreshModelConfig().Unet.BlockOutChannels);
        Assert.Equal(new BaseTrainingOptions(), Parse<TrainBaseCommand.Settings>("train-base", "--data", "d", "--out", "o").Training());
    }

    [Fact]
    public void Dataset_synth_dataset_build_and_run_resolve_identical_dataset_settings()
    {
        var spec = SpecLoader.Parse("""
            { "name": "x", "dataset": { "characters": 9, "outfits": 2, "images_per_character": 7, "size": 48, "seed": 11, "variant_rate": 0.1,
                                        "unseen_fraction": 0.3, "heldout_fraction": 0.2, "face_references": 1, "clothes_references": 3,
                                        "near_duplicate_threshold": 10, "crop_size": 24, "max_pixels": 1000000 } }
            """, "inline");
        string[] build = ["--seed", "11", "--unseen-fraction", "0.3", "--heldout-fraction", "0.2", "--face-references", "1", "--clothes-refs", "3",
            "--near-dup-threshold", "10", "--crop-size", "24", "--max-pixels", "1000000"];
        var synth = Parse<DatasetSynthCommand.Settings>(["dataset", "synth", "--out", "o", "--characters", "9", "--outfits", "2", "--images-per-character", "7",
            "--size", "48", "--variant-rate", "0.1", .. build]);
        Assert.Equal(spec.Dataset, synth.Dataset());
        Assert.Equal(spec.Dataset.Synth(), synth.Dataset().Synth());
        // (BuildOptions holds a list: compared as the JSON the stats record.)
        static string Json(Data.BuildOptions options) => System.Text.Json.JsonSerializer.Serialize(options);
        Assert.Equal(Json(spec.Dataset.Build([ReferenceScheme.B])), Json(synth.Dataset().Build(synth.Schemes())));
        // dataset build has the non-world fields; its builder options are the same.
        var ingest = Parse<DatasetBuildCommand.Settings>(["dataset", "build", "--source", "s", "--out", "o", .. build]);
        Assert.Equal(Json(spec.Dataset.Build([ReferenceScheme.B])), Json(ingest.Dataset().Build(ingest.Schemes())));
        foreach (var property in typeof(DatasetBuildCommand.Settings).GetProperties().Where(p => p.GetCustomAttribute<SettingHelpAttribute>() is not null))
            Assert.Equal(typeof(Data.DatasetSettings), property.GetCustomAttribute<SettingHelpAttribute>()!.Record);
        // Nothing given: the record's defaults; an out-of-range value is one line naming the flag or the spec path.
        Assert.Equal(new Data.DatasetSettings(), Parse<DatasetSynthCommand.Settings>("dataset", "synth", "--out", "o").Dataset());
        var console = new TestConsole().Width(200);
        Assert.Null(CliApp.Parse(["dataset", "synth", "--out", "o", "--unseen-fraction", "1.5"], console));
        Assert.Contains("--unseen-fraction: 1.5 is outside [0, 0.99]", console.Output);
        var e = Assert.Throws<SpecValidationException>(() => SpecLoader.Parse("""{ "name": "x", "dataset": { "outfits": 12 } }""", "inline"));
        Assert.Contains("$.dataset.outfits: 12 is outside [1, 8]", e.Message);
        e = Assert.Throws<SpecValidationException>(() => SpecLoader.Parse("""{ "name": "x", "dataset": { "unseen_characters": 4 } }""", "inline"));
        Assert.Contains("$.dataset.unseen_characters: replaced by unseen_fraction", e.Message);
    }

    [Fact]
    public void Seed_threads_device_and_out_are_declared_once_for_the_verbs_that_train_sample_or_evaluate()
    {
        // Verbs that keep their own declaration, and why (each one measured or scoped differently).
        var own = new Dictionary<Type, string>
        {
            [typeof(RunSettings)] = "the spec holds the seed; --out is the folder of run folders",
            [typeof(DatasetBuildSettings)] = "the dataset's seed is a DatasetSettings field",
            [typeof(DoctorCommand.Settings)] = "checks the stack; threads default to libtorch's choice",
            [typeof(DatasetBenchCommand.Settings)] = "a benchmark of the builder",
            [typeof(MetricsBenchCommand.Settings)] = "a benchmark of the metrics",
            [typeof(ModelBenchmarkCommand.Settings)] = "a CPU benchmark",
            [typeof(StepBenchmarkCommand.Settings)] = "a CPU benchmark",
            [typeof(SoakCommand.Settings)] = "a CPU soak at 1 thread by default",
            [typeof(RunsGridCommand.Settings)] = "--out is an image file",
        };
        var shared = new[] { "--seed", "--threads", "--device" };
        var verbs = typeof(CliApp).Assembly.GetTypes().Where(t => typeof(CommandSettings).IsAssignableFrom(t) && !t.IsAbstract).ToList();
        foreach (var verb in verbs)
        {
            var declared = verb.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
                .Select(p => p.GetCustomAttribute<CommandOptionAttribute>()).Where(o => o is not null)
                .SelectMany(o => o!.LongNames.Select(n => "--" + n)).Where(shared.Contains).ToList();
            if (declared.Count == 0 || own.ContainsKey(verb) || (verb.BaseType is { } b && own.ContainsKey(b))) continue;
            Assert.Fail($"{verb.FullName} declares {string.Join(", ", declared)} itself: derive from RuntimeSettings/OutputSettings");
        }
        foreach (var verb in new[] { typeof(TrainBaseCommand.Settings), typeof(TrainCommand.Settings), typeof(EvaluateCommand.Settings), typeof(SampleCommand.Settings), typeof(SampleBaseCommand.Settings) })
            Assert.True(typeof(OutputSettings).IsAssignableFrom(verb), verb.FullName);
        Assert.True(typeof(RuntimeSettings).IsAssignableFrom(typeof(ModelDiagnoseCommand.Settings)));
        // One default seed: evaluate and diagnose used 1 while the others used 0.
        Assert.Equal(RuntimeSettings.DefaultSeed, Parse<EvaluateCommand.Settings>("evaluate", "--checkpoint", "c", "--data", "d", "--out", "o").Seed);
        Assert.Equal(RuntimeSettings.DefaultSeed, Parse<TrainCommand.Settings>("train", "--data", "d", "--base", "b", "--out", "o").Seed);
        // sample-base and model diagnose sample a text-to-image model with one record's settings, names and defaults.
        Assert.Equal(new SamplingOptions { Steps = 7, GuidanceScale = 2, Seed = 4 },
            Parse<SampleBaseCommand.Settings>("sample-base", "--model", "m", "--out", "o", "--steps", "7", "--text-guidance", "2", "--seed", "4").Sampling());
        Assert.Equal(new SamplingOptions(), Parse<ModelDiagnoseCommand.Settings>("model", "diagnose", "--model", "m", "--data", "d").Sampling());
        foreach (var verb in new[] { typeof(SampleBaseCommand.Settings), typeof(ModelDiagnoseCommand.Settings) })
            foreach (var field in SettingFields.Of(typeof(SamplingOptions)))
                Assert.True(SettingsBinder.OptionProperty(verb, field.Flag)?.GetCustomAttribute<SettingHelpAttribute>()?.Record == typeof(SamplingOptions), $"{verb.FullName} {field.Flag}");
        // sample draws as evaluate does: the same three settings and defaults.
        var sample = Parse<SampleCommand.Settings>("sample", "--checkpoint", "c", "--out", "o", "--text-scale", "4");
        Assert.Equal(new EvaluationSettings { TextGuidance = 4 }.Sampling(9), sample.Sampling().Sampling(9));
        var console = new TestConsole().Width(200);
        Assert.Null(CliApp.Parse(["sample", "--checkpoint", "c"], console));
        Assert.Contains("--out is required", console.Output);
        console = new TestConsole().Width(200);
        Assert.Null(CliApp.Parse(["sample", "--checkpoint", "c", "--out", "o", "--reference-scale", "NaN"], console));
        Assert.Contains("--reference-guidance: NaN is outside [0, 50]", console.Output);
    }

    [Fact]
    public void Concept_words_are_parsed_where_a_manifest_or_a_flag_is_read()
    {
        using var dir = new TempDir();
        var path = dir.File("scheme_b.jsonl");
        string Line(string concept) => $$"""{"target":"t","image":"images/t.png","prompt":"1girl","split":"train","scheme":"b","character":"c","clothing_id":"c/0","references":[{"id":"r_face","image":"crops/r_face.png","concept":"{{concept}}","source_id":"r"}]}""";
        File.WriteAllLines(path, [Line("face"), Line("hat")]);
        var e = Assert.Throws<InvalidDataException>(() => Data.ManifestReader.Read(path));
        Assert.StartsWith($"{path}:2: bad manifest line:", e.Message);
        File.WriteAllLines(path, [Line("clothes")]);
        Assert.Equal(Concept.Clothes, Data.ManifestReader.Read(path)[0].References[0].Concept);
        var console = new TestConsole().Width(200);
        Assert.Null(CliApp.Parse(["sample", "--checkpoint", "c", "--out", "o", "--reference", "fase=x.png"], console));
        Assert.Contains("--reference 'fase=x.png': unknown concept word 'fase' (did you mean 'face'?); use face or clothes", console.Output);
    }

    [Fact]
    public void Min_snr_gamma_zero_or_null_turns_the_weighting_off_in_both_records()
    {
        var off = SpecLoader.Parse("""{ "name": "x", "base": { "min_snr_gamma": 0 }, "train": { "min_snr_gamma": null } }""", "inline");
        Assert.Null(off.Base.EffectiveMinSnrGamma);
        Assert.Null(off.Train.EffectiveMinSnrGamma);
        var defaults = SpecLoader.Parse("""{ "name": "x" }""", "inline");
        Assert.Equal(TrainingRecipe.MinSnrGamma, defaults.Base.EffectiveMinSnrGamma);
        Assert.Equal(TrainingRecipe.MinSnrGamma, defaults.Train.EffectiveMinSnrGamma);
        Assert.Null(Parse<TrainCommand.Settings>("train", "--data", "d", "--base", "b", "--out", "o", "--min-snr-gamma", "0").Training().EffectiveMinSnrGamma);
    }

    [Fact]
    public void Evaluate_and_run_resolve_identical_options_from_identical_inputs()
    {
        var spec = SpecLoader.Parse("""{ "name": "x", "evaluate": { "reference_sets": 5, "sampling_steps": 9, "text_guidance": 2.5, "prompt_view": "full", "identity_view": "whole" } }""", "inline");
        var cli = Parse<EvaluateCommand.Settings>("evaluate", "--checkpoint", "c", "--data", "d", "--out", "o", "--reference-sets", "5", "--sampling-steps", "9",
            "--text-guidance", "2.5", "--prompt-view", "full", "--identity-view", "whole");
        Assert.Equal(spec.Evaluate.ForSplit(EvaluationSplit.Unseen, 7), cli.Protocol().ForSplit(EvaluationSplit.Unseen, 7));
        var (specSuite, cliSuite) = (spec.Evaluate.Suite(), cli.Protocol().Suite());
        Assert.Equal((specSuite.IdentityView, specSuite.IdentityBaselineQuantile), (cliSuite.IdentityView, cliSuite.IdentityBaselineQuantile));
        var aliases = Parse<EvaluateCommand.Settings>("evaluate", "--checkpoint", "c", "--data", "d", "--out", "o", "--sets", "5", "--steps", "9",
            "--text-scale", "2.5", "--prompt-view", "full", "--identity-view", "whole");
        Assert.Equal(cli.Protocol().ForSplit(EvaluationSplit.Seen, 1), aliases.Protocol().ForSplit(EvaluationSplit.Seen, 1));
    }

    [Fact]
    public void A_mistyped_domain_word_is_one_line_with_a_suggestion_on_the_command_line_and_in_a_spec()
    {
        var console = new TestConsole().Width(200);
        Assert.Null(CliApp.Parse(["train", "--data", "d", "--base", "b", "--out", "o", "--prompt-view", "contxt"], console));
        Assert.Contains("--prompt-view: unknown view 'contxt' (did you mean 'context'?); use full or context", console.Output);
        console = new TestConsole().Width(200);
        Assert.Null(CliApp.Parse(["train", "--data", "d", "--base", "b", "--out", "o", "--model", "retrinett"], console));
        Assert.Contains("--model: unknown model 'retrinett' (did you mean 'retrinet'?)", console.Output);
        var e = Assert.Throws<SpecValidationException>(() => SpecLoader.Parse("""{ "name": "x", "evaluate": { "splits": ["unsen"] } }""", "inline"));
        Assert.Contains("$.evaluate.splits[0]: unknown split 'unsen' (did you mean 'unseen'?)", e.Message);
        Assert.Equal("text-only", ModelKind.TextOnly.Name());
        Assert.Equal(ModelKind.TextOnly, Words.Parse<ModelKind>("text-only"));
    }
}
