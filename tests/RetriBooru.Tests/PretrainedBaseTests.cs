using System.Text.Json;
using System.Text.Json.Nodes;
using RetriBooru.Cli;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>Bases given to a spec instead of trained by it (base.checkpoint): identity, export, the checks, the shipped one.</summary>
public class PretrainedBaseTests
{
    static void WriteModel(string folder, byte weight = 1)
    {
        Directory.CreateDirectory(Path.Combine(folder, "unet"));
        File.WriteAllText(Path.Combine(folder, "model_index.json"), "{\"_class_name\": \"StableDiffusionPipeline\"}");
        File.WriteAllBytes(Path.Combine(folder, "unet", "weights.bin"), [weight, 2, 3, 4]);
    }

    static readonly object World = new { dataset = new { characters = 4, seed = 7 }, records = "AB12" };
    static readonly BaseTrainingOptions Recipe = new() { Steps = 20, BatchSize = 4 };

    /// <summary>A finished base stage as the runner leaves it: done.json (its inputs) and model/.</summary>
    static string WriteStage(string root)
    {
        var stage = Path.Combine(root, "base", "0123456789abcdef");
        WriteModel(Path.Combine(stage, "model"));
        var inputs = new { dataset = World, @base = Recipe, seed = 1L, emaRule = "rule", numerics = "3", threads = 2 };
        File.WriteAllText(Path.Combine(stage, "done.json"), JsonSerializer.Serialize(new { stage = "base", key = "0123456789abcdef", inputs, elapsed_seconds = 12.5, finished_utc = DateTime.UtcNow }, WorkbenchJson.Pretty));
        return stage;
    }

    [Fact]
    public void Content_identity_follows_the_files_not_the_folder_or_the_record()
    {
        using var temp = new TempDir();
        WriteModel(temp.File("a"));
        WriteModel(temp.File("b"));
        var identity = PretrainedBase.ContentIdentity(temp.File("a"));
        Assert.Equal(identity, PretrainedBase.ContentIdentity(temp.File("b")));
        File.WriteAllText(Path.Combine(temp.File("b"), PretrainedBase.RecordFile), "{}");
        Assert.Equal(identity, PretrainedBase.ContentIdentity(temp.File("b")));
        WriteModel(temp.File("b"), weight: 9);
        Assert.NotEqual(identity, PretrainedBase.ContentIdentity(temp.File("b")));
        // The same bytes under another name are another model.
        File.Move(Path.Combine(temp.File("a"), "unet", "weights.bin"), Path.Combine(temp.File("a"), "unet", "other.bin"));
        Assert.NotEqual(identity, PretrainedBase.ContentIdentity(temp.File("a")));
        Directory.CreateDirectory(temp.File("empty"));
        Assert.Contains("holds no files", Assert.Throws<InvalidDataException>(() => PretrainedBase.ContentIdentity(temp.File("empty"))).Message);
    }

    [Fact]
    public void An_exported_base_records_what_trained_it_and_refuses_a_spec_that_would_train_another()
    {
        using var temp = new TempDir();
        var stage = WriteStage(temp.Path);
        var output = temp.File("exported");
        var record = PretrainedBase.Export(stage, output, runFolder: null);
        Assert.Equal(PretrainedBase.ContentIdentity(Path.Combine(stage, "model")), record.Identity);
        Assert.Equal(PretrainedBase.ContentIdentity(output), record.Identity);
        var read = PretrainedBase.ReadRecord(output)!;
        Assert.Equal(1, read.Seed);
        Assert.Equal(2, read.Threads);
        Assert.Equal(12.5, read.TrainingSeconds);

        Assert.Empty(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), read, World, Recipe, 1));
        // base.checkpoint itself is not part of the recipe: the spec that names the base has it set.
        Assert.Empty(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), read, World, Recipe with { Checkpoint = output }, 1));

        var seed = Assert.Single(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), read, World, Recipe, 2));
        Assert.Contains("seed 1, the spec's is 2", seed);
        var recipe = Assert.Single(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), read, World, Recipe with { Steps = 30 }, 1));
        Assert.Contains("another recipe (base.steps: 20 -> 30)", recipe);
        var world = Assert.Single(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), read, new { dataset = new { characters = 4, seed = 8 }, records = "AB12" }, Recipe, 1));
        Assert.Contains("another world (dataset.dataset.seed: 7 -> 8)", world);
        WriteModel(output, weight: 5);
        Assert.Contains("files changed", Assert.Single(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), read, World, Recipe, 1)));

        // An earlier export is replaced only when asked, and whole.
        Assert.Contains("already holds", Assert.Throws<IOException>(() => PretrainedBase.Export(stage, output, null)).Message);
        PretrainedBase.Export(stage, output, null, overwrite: true);
        Assert.Empty(PretrainedBase.Mismatches(PretrainedBase.ContentIdentity(output), PretrainedBase.ReadRecord(output)!, World, Recipe, 1));
        // Only a finished base stage exports.
        File.Delete(Path.Combine(stage, "done.json"));
        Assert.Contains("not a finished stage", Assert.Throws<FileNotFoundException>(() => PretrainedBase.Export(stage, temp.File("again"), null)).Message);
    }

    [Fact]
    public void Unknown_builtin_and_missing_folders_are_named()
    {
        using var temp = new TempDir();
        var unknown = Assert.Throws<ArgumentException>(() => PretrainedBase.Resolve("builtin:no-such-base", temp.Path));
        Assert.Contains("no such built-in base (known: builtin:quickstart-base", unknown.Message);
        Assert.Contains("no such model folder", Assert.Throws<DirectoryNotFoundException>(() => PretrainedBase.Resolve(temp.File("missing"), temp.Path)).Message);
    }

    /// <summary>Cancels the run when the first reference model would start training: everything before it has run.</summary>
    sealed class StopBeforeTraining(CancellationTokenSource stop) : IProgress<RunnerEvent>
    {
        public List<RunnerEvent> Events { get; } = [];
        public void Report(RunnerEvent value)
        {
            Events.Add(value);
            if (value.Stage.StartsWith("train-", StringComparison.Ordinal) && value.Message == "starting") stop.Cancel();
        }
    }

    [Fact]
    public void The_shipped_quickstart_base_is_the_one_the_quickstart_spec_would_train()
    {
        // Fails when the world's generator, the quickstart's world or its base recipe change without a new export
        // (README, "Pretrained base"): the quickstart would then refuse the shipped base.
        using var temp = new TempDir();
        var spec = SpecLoader.Load(Path.Combine(RepoPaths.Root, "experiments", "quickstart.json"));
        Assert.Equal("builtin:quickstart-base", spec.Base.Checkpoint);
        using var stop = new CancellationTokenSource();
        var progress = new StopBeforeTraining(stop);
        var runner = new ExperimentRunner(spec, new RunOptions { RunsRoot = temp.File("runs") }, progress);
        Assert.ThrowsAny<OperationCanceledException>(() => runner.Run(stop.Token));
        Assert.Contains(progress.Events, e => e.Stage == "base" && e.Message.StartsWith("pretrained: builtin:quickstart-base", StringComparison.Ordinal));
        var run = Directory.GetDirectories(temp.File("runs")).Single(d => !Path.GetFileName(d).StartsWith('.'));
        var copied = JsonSerializer.Deserialize<PretrainingRecord>(File.ReadAllText(Path.Combine(run, ExperimentRunner.BasePretrainingFile)), WorkbenchJson.Lines)!;
        Assert.Equal(spec.Seed, copied.Seed);
        Assert.Equal(spec.Base.Steps, copied.Base!["steps"]!.GetValue<int>());
    }
}
