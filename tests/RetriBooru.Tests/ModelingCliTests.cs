using RetriBooru.Cli;
using RetriBooru.Diffusion;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

public class ModelingCliTests
{
    [Fact]
    public void Model_info_prints_sd15_counts()
    {
        var console = new TestConsole().Width(200);
        Assert.Equal(0, CliApp.Run(["model", "info", "--config", "sd15"], console));
        foreach (var expected in new[] { "859,520,964", "83,653,863", "123,060,480", "unet", "vae", "text_encoder" })
            Assert.Contains(expected, console.Output);
        var unknown = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["model", "info", "--config", "huge"], unknown));
        Assert.Contains("unknown model config 'huge'", unknown.Output);
    }

    [Fact]
    public void Train_base_then_sample_base_writes_a_model_log_and_images()
    {
        using var dir = new TempDir();
        var data = DiffusionTrainerTests.WriteDataset(dir, 4, size: 32, broken: true);
        var outDir = Path.Combine(dir.Path, "run");
        var console = new TestConsole().Width(200);
        int code = CliApp.Run(["train-base", "--data", data, "--config", "tiny", "--steps", "3", "--batch", "2", "--out", outDir, "--log-every", "1", "--seed", "9"], console);
        Assert.True(code == 0, console.Output);
        Assert.Contains("1 skipped", console.Output);
        Assert.Contains("step 3/3", console.Output);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(outDir, DiffusionTrainer.LossLog)).Length);
        Assert.True(File.Exists(Path.Combine(outDir, "model", "unet", "diffusion_pytorch_model.safetensors")));
        Assert.True(File.Exists(Path.Combine(outDir, "checkpoint", DiffusionTrainer.StateFile)));

        // A folder holding a finished run is refused, and replaced whole with --overwrite.
        var refused = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["train-base", "--data", data, "--steps", "2", "--batch", "2", "--out", outDir], refused));
        Assert.Contains("already holds an earlier run", refused.Output);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(outDir, DiffusionTrainer.LossLog)).Length);
        var replaced = new TestConsole().Width(200);
        Assert.True(CliApp.Run(["train-base", "--data", data, "--steps", "2", "--batch", "2", "--out", outDir, "--overwrite", "--seed", "9"], replaced) == 0, replaced.Output);
        Assert.Equal(2, File.ReadAllLines(Path.Combine(outDir, DiffusionTrainer.LossLog)).Length);
        Assert.False(Directory.Exists(outDir + ".new") || Directory.Exists(outDir + ".old"), "the staging folders are gone after the swap");
        var both = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["train-base", "--data", data, "--steps", "2", "--out", outDir, "--overwrite", "--resume"], both));
        Assert.Contains("exclude each other", both.Output);

        // Fine-tuning from the trained folder starts from its weights and tokenizer.
        var tuned = new TestConsole().Width(200);
        code = CliApp.Run(["train-base", "--data", data, "--init", Path.Combine(outDir, "model"), "--steps", "1", "--batch", "2", "--out", Path.Combine(dir.Path, "tuned")], tuned);
        Assert.True(code == 0, tuned.Output);
        Assert.Contains("step 1/1", tuned.Output);

        // The prediction type is a schedule setting, saved with the model.
        Assert.Contains("\"prediction_type\": \"sample\"", File.ReadAllText(Path.Combine(outDir, "model", "scheduler", "scheduler_config.json")));
        var epsilon = new TestConsole().Width(200);
        code = CliApp.Run(["train-base", "--data", data, "--prediction", "epsilon", "--steps", "1", "--batch", "2", "--out", Path.Combine(dir.Path, "epsilon")], epsilon);
        Assert.True(code == 0, epsilon.Output);
        Assert.Contains("\"epsilon\"", File.ReadAllText(Path.Combine(dir.Path, "epsilon", "model", "scheduler", "scheduler_config.json")));

        var samples = Path.Combine(dir.Path, "samples");
        var sampleConsole = new TestConsole().Width(200);
        code = CliApp.Run(["sample-base", "--model", Path.Combine(outDir, "model"), "--prompt", "1girl, red_hair", "--count", "2", "--steps", "3", "--out", samples], sampleConsole);
        Assert.True(code == 0, sampleConsole.Output);
        Assert.Equal(2, Directory.GetFiles(samples, "*.png").Length);
        var again = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["sample-base", "--model", Path.Combine(outDir, "model"), "--count", "1", "--steps", "3", "--out", samples], again));
        Assert.Contains("--overwrite", again.Output);
        var resampled = new TestConsole().Width(200);
        Assert.True(CliApp.Run(["sample-base", "--model", Path.Combine(outDir, "model"), "--count", "1", "--steps", "3", "--seed", "4", "--out", samples, "--overwrite"], resampled) == 0, resampled.Output);
        Assert.Equal(["sample-4-00.png"], Directory.GetFiles(samples).Select(Path.GetFileName));
    }

    [Fact]
    public void Model_diagnose_prints_the_error_table_kid_and_writes_its_files()
    {
        using var dir = new TempDir();
        var data = DiffusionTrainerTests.WriteDataset(dir, 6, size: 32);
        var run = Path.Combine(dir.Path, "run");
        var train = new TestConsole().Width(200);
        Assert.True(CliApp.Run(["train-base", "--data", data, "--steps", "2", "--batch", "2", "--out", run], train) == 0, train.Output);

        var console = new TestConsole().Width(200);
        var outDir = Path.Combine(dir.Path, "diagnose");
        int code = CliApp.Run(["model", "diagnose", "--model", Path.Combine(run, "model"), "--data", data, "--images", "6", "--samples", "4", "--steps", "2",
            "--timesteps", "0,10,500,999", "--no-readability", "--out", outDir], console);
        Assert.True(code == 0, console.Output);
        Assert.Contains("model / naive", console.Output);
        Assert.Contains("noise vs real (ceiling)", console.Output);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "diagnose.json")))!;
        Assert.Equal(4, json["errors"]!.AsArray().Count);
        // Tag sensitivity: the whole prompt and the synthetic schema's attributes the prompts name (hair colour, expression), at three timesteps.
        Assert.Contains("tag swapped", console.Output);
        Assert.Contains("whole picture | figure", console.Output); // the test dataset has figure masks
        var sensitivity = json["tag_sensitivity"]!.AsArray().Select(r => (string)r!["attribute"]!).ToList();
        Assert.Equal(3, sensitivity.Count(a => a == DenoisingDiagnostics.WholePrompt));
        Assert.Contains("hair_color", sensitivity);
        Assert.DoesNotContain("character", sensitivity); // the test prompts do not name their characters (c0, c1)
        Assert.Contains("expression", sensitivity);
        Assert.DoesNotContain("pose", sensitivity);
        Assert.All(json["tag_sensitivity"]!.AsArray(), r => Assert.True((double)r!["figure_ratio"]! > 0));
        // A freshly initialised model is worse than the naive guess at low noise and its samples sit far above the real floor.
        Assert.True((double)json["kid"]!["kid"]!["value"]! > (double)json["kid"]!["real_floor"]!["value"]!);
        Assert.True(File.Exists(Path.Combine(outDir, "denoising-error.html")));
        Assert.True(File.Exists(Path.Combine(outDir, "samples.png")));

        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["--samples", "1"], "at least 2 samples"),
                     (["--guidance", "NaN"], "guidance"),
                     (["--timesteps", "0,x"], "--timesteps"),
                     (["--timesteps", "5000"], "outside"),
                     (["--probe-world", "-1"], "--probe-world must be in [0, 200000], got -1"),
                 })
        {
            var bad = new TestConsole().Width(200);
            Assert.NotEqual(0, CliApp.Run(["model", "diagnose", "--model", Path.Combine(run, "model"), "--data", data, "--no-readability", .. args], bad));
            Assert.Contains(message, bad.Output);
        }
    }

    [Fact]
    public void A_batch_larger_than_the_dataset_is_clamped_to_it_with_a_note()
    {
        using var dir = new TempDir();
        var data = DiffusionTrainerTests.WriteDataset(dir, 4, size: 32);
        var outDir = dir.File("run");
        var console = new TestConsole().Width(200);
        int code = CliApp.Run(["train-base", "--data", data, "--steps", "1", "--batch", "100000", "--out", outDir], console);
        Assert.True(code == 0, console.Output);
        Assert.Contains("note: batch size 100000 is larger than the 4 training examples; using 4", console.Output);
        var state = System.Text.Json.JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(outDir, DiffusionTrainer.CheckpointFolder, DiffusionTrainer.StateFile)), RetriBooru.Data.WorkbenchJson.Lines)!;
        Assert.Equal(4, state.Options.BatchSize);
        // Resuming with the same request finds the same clamped batch in the checkpoint.
        var resumed = new TestConsole().Width(200);
        Assert.True(CliApp.Run(["train-base", "--data", data, "--steps", "2", "--batch", "100000", "--out", outDir, "--resume"], resumed) == 0, resumed.Output);
    }

    [Fact]
    public void Train_base_reports_a_missing_dataset_clearly()
    {
        using var dir = new TempDir();
        var console = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["train-base", "--data", dir.File("nowhere"), "--out", dir.File("out"), "--steps", "1"], console));
        Assert.Contains("records.jsonl", console.Output);
        var usage = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["train-base", "--out", dir.File("out")], usage));
        Assert.Contains("--data is required", usage.Output);
        // A misspelt option is an error with a suggestion, never silently ignored.
        var typo = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["train-base", "--data", dir.File("nowhere"), "--out", dir.File("out"), "--checkpoint-evry", "1"], typo));
        Assert.Contains("checkpoint-evry", typo.Output);
        Assert.Contains("did you mean '--checkpoint-every'?", typo.Output);
        // Another verb's option is named as such, not "did you mean" itself.
        var foreign = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["runs", "--out", dir.File("out")], foreign));
        Assert.Contains("--out belongs to other commands", foreign.Output);
        Assert.DoesNotContain("did you mean '--out'", foreign.Output);
        // A switch given a word that is not true or false says so, instead of only "Unknown command".
        foreach (var flag in new[] { "--pooled-text", "--skip-unseen" })
        {
            var notBool = new TestConsole().Width(250);
            Assert.NotEqual(0, CliApp.Run(["train-base", "--data", dir.File("nowhere"), "--out", dir.File("out"), flag, "maybe"], notBool));
            Assert.Contains($"({flag} takes true or false, or no value for true; got 'maybe')", notBool.Output);
        }
        // Old short flags (--lr, --lr-schedule) are aliases; the message names the setting's own flag.
        foreach (var (option, value, named) in new[] { ("--min-snr-gamma", "-1", "--min-snr-gamma"), ("--lr", "NaN", "--learning-rate"), ("--lr-schedule", "cosin", "did you mean 'cosine'"),
                     ("--patch-size", "0", "--patch-size"), ("--channels", "64,x", "--channels"),
                     ("--background-weight", "1.5", "--background-weight"), ("--attention-levels", "9", "--attention-levels") })
        {
            var bad = new TestConsole().Width(200);
            Assert.NotEqual(0, CliApp.Run(["train-base", "--data", dir.File("nowhere"), "--out", dir.File("out"), option, value], bad));
            Assert.Contains(named, bad.Output);
        }
    }

    [Fact]
    public void Model_benchmark_prints_throughput_model_flop_utilisation_and_memory()
    {
        var console = new TestConsole().Width(200);
        Assert.Equal(0, CliApp.Run(["model", "benchmark", "--steps", "3", "--batch", "4", "--rss-at", "1,3", "--sample-count", "1", "--sample-steps", "2"], console));
        Assert.Contains("training", console.Output);
        Assert.Matches(@"MFU.*GFLOP per step.*MFU \d+", console.Output.Replace("\n", " "));
        Assert.Contains("memory", console.Output);
    }

    [Fact]
    public void Step_benchmark_times_the_base_step_and_each_reference_model_in_one_run()
    {
        var phases = RetriBooru.Diffusion.StepBenchmark.Run(new RetriBooru.Diffusion.StepBenchmark.Options { BatchSize = 2, Steps = 2, References = 4, Models = ["retrinet", "controlnet"] });
        // Base: a bare loop and the trainer on one thread (plus the trainer at the caller's threads when above 1).
        int threads = RetriBooru.Runtime.TorchRuntime.Threads;
        var expected = (threads > 1 ? new[] { "base", "base", "base" } : ["base", "base"]).Concat(["retrinet", "controlnet"]).ToArray();
        Assert.Equal(expected, phases.Select(p => p.Model));
        Assert.Equal(["bare", "trainer"], phases.Take(2).Select(p => p.Loop));
        Assert.Equal([0, 4, 4], phases.Skip(expected.Length - 3).Select(p => p.References));
        // FLOPs counted from the module graph: RetriNet's step (retrieval encoder over 4 references) costs more than the base's.
        Assert.All(phases, p => Assert.True(p.GflopPerStep > 0 && p.PeakGflops > 0 && p.Mfu > 0, p.ToString()));
        Assert.True(phases.First(p => p.Model == "retrinet").GflopPerStep > phases[0].GflopPerStep);
        foreach (var p in phases)
        {
            Assert.True(p.StepsPerSecond > 0 && double.IsFinite(p.StepsPerSecond), p.ToString());
            Assert.True(p.PeakRssMiB > 50, p.ToString());
            Assert.True(p.TrainableParameters > 0 && double.IsFinite(p.FinalLoss), p.ToString());
        }
        // RetriNet freezes the encoder: fewer trainable parameters than the whole U-Net trained by the base step.
        Assert.True(phases.First(p => p.Model == "retrinet").TrainableParameters < phases[0].TrainableParameters);

        var console = new TestConsole().Width(200);
        Assert.Equal(0, CliApp.Run(["model", "step-benchmark", "--steps", "2", "--batch", "2", "--models", "retrinet"], console));
        Assert.Contains("step vs base", console.Output);
        Assert.Contains("retrinet", console.Output);
        Assert.Contains("trainer vs bare loop", console.Output);
        Assert.Contains("MFU", console.Output);
        var bad = new TestConsole().Width(200);
        Assert.NotEqual(0, CliApp.Run(["model", "step-benchmark", "--models", "retrinett"], bad));
        Assert.Contains("unknown model 'retrinett'", bad.Output);
    }
}
