using Spectre.Console.Testing;
using RetriBooru.Cli;
using System.Text.Json;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class DiffusionTrainerTests
{
    static readonly string[] Tags = ["1girl, red_hair, smile", "1girl, blue_hair, school_uniform", "1boy, black_hair", "1girl, red_hair, school_uniform, smile"];

    /// <summary>A dataset folder of small coloured images with tag prompts; <paramref name="broken"/> adds one undecodable image.</summary>
    internal static string WriteDataset(TempDir dir, int count, int size = 32, bool broken = false)
    {
        Torch.Load();
        var root = Path.Combine(dir.Path, "data");
        Directory.CreateDirectory(Path.Combine(root, DatasetLayout.ImagesFolder));
        Directory.CreateDirectory(Path.Combine(root, DatasetLayout.MasksFolder));
        var records = new List<string>();
        using var generator = new TorchSharp.torch.Generator(0).manual_seed(5);
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            var colour = rand([3, 1, 1], generator: generator) * 2 - 1;
            var image = colour.expand(3, size, size).clone();
            image[.., (size / 4)..(3 * size / 4), (size / 4)..(3 * size / 4)] = -colour.expand(3, size / 2, size / 2);
            var id = $"{i:D4}";
            ImageTensor.SavePng(image, Path.Combine(root, "images", id + ".png"));
            var mask = full([3, size, size], -1f);
            mask[.., (size / 4)..(3 * size / 4), (size / 4)..(3 * size / 4)] = 1f;
            ImageTensor.SavePng(mask, Path.Combine(root, DatasetLayout.MasksFolder, id + ".png"));
            records.Add(JsonSerializer.Serialize(new ImageRecord { Id = id, Image = $"images/{id}.png", Mask = $"masks/{id}.png", Character = "c" + (i % 2), Prompts = Tags[i % Tags.Length], Width = size, Height = size }, WorkbenchJson.Lines));
        }
        if (broken)
        {
            File.WriteAllText(Path.Combine(root, "images", "bad.png"), "not a png");
            records.Add(JsonSerializer.Serialize(new ImageRecord { Id = "bad", Image = "images/bad.png", Character = "c0", Prompts = "1girl" }, WorkbenchJson.Lines));
        }
        File.WriteAllLines(Path.Combine(root, DatasetLayout.RecordsFile), records);
        return root;
    }

    /// <summary>The tiny config's structure at test size: 16 px images (8 px after the 2x2 pixel-unshuffle codec), two levels, one attention level.</summary>
    internal static readonly ModelConfig Micro = ModelConfigs.Tiny with
    {
        Name = "micro",
        ImageSize = 16,
        Unet = ModelConfigs.Tiny.Unet with
        {
            SampleSize = 8, BlockOutChannels = [16, 32], DownBlockTypes = ["DownBlock2D", "CrossAttnDownBlock2D"],
            UpBlockTypes = ["CrossAttnUpBlock2D", "UpBlock2D"], AttentionHeads = 2, CrossAttentionDim = 32,
        },
        TextEncoder = ModelConfigs.Tiny.TextEncoder with { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, MaxPositionEmbeddings = 8 },
    };

    internal static TrainingResult Train(string data, string outDir, TrainerOptions options, bool resume = false,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellation = default, int shards = 1)
    {
        var source = new DatasetFolderSource(data, Micro.ImageSize);
        // On resume the initial weights are replaced by the checkpoint's.
        using var model = BaseModelFactory.Create(Micro, source, options.Seed);
        var task = new TextToImageTask(model, source, promptDropout: 0.25);
        return new DiffusionTrainer(task, options) { Shards = shards }.Run(outDir, resume, progress, cancellation);
    }

    [Fact]
    public void A_background_weight_makes_the_base_loss_a_weighted_mean_over_figure_and_background()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 2, size: 16);
        var source = new DatasetFolderSource(data, Micro.ImageSize);
        using var model = BaseModelFactory.Create(Micro, source, 0);
        double Loss(double? backgroundWeight)
        {
            var task = new TextToImageTask(model, source, promptDropout: 0, minSnrGamma: null, backgroundWeight: backgroundWeight);
            using var generator = new Generator(0).manual_seed(9);
            using var batch = task.Prepare([0], 0, generator);
            using var loss = task.Loss(batch, 0, 1);
            return loss.item<float>();
        }
        double plain = Loss(null), figureOnly = Loss(0), even = Loss(1), half = Loss(0.5);
        Assert.Equal(plain, even, 5);
        // The mask is the centre square: 16 of the 8 x 8 model-resolution cells (area-resized, so exactly 0 or 1).
        // From the figure-only and whole-image means follow the figure's and the background's error sums, and from
        // them the weighted mean at 0.5: (F + 0.5 B) / (16 + 0.5 * 48).
        double figureSum = figureOnly * 16, backgroundSum = even * 64 - figureSum;
        Assert.Equal((figureSum + 0.5 * backgroundSum) / (16 + 0.5 * 48), half, 4);
        Assert.NotEqual(plain, figureOnly, 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => new TextToImageTask(model, source, backgroundWeight: 1.5));
    }

    [Fact]
    public void Tag_sensitivity_is_exactly_one_for_a_model_that_ignores_the_text_and_lists_only_named_attributes()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 8, size: 16);
        var source = new DatasetFolderSource(data, Micro.ImageSize);
        using var model = BaseModelFactory.Create(Micro, source, 0);
        // The examples' tensors, the stacks and the masks go with this scope (declared after the model, so disposed first).
        using var tensors = NewDisposeScope();
        var examples = Enumerable.Range(0, source.Count).Select(source.Get).ToList();
        var prompts = examples.Select(e => e.Prompt).ToList();
        var images = stack(examples.Select(e => e.Image).ToArray());
        TaggedAttribute[] attributes = [new("hair", ["red_hair", "blue_hair", "black_hair"]), new("expression", ["smile", "frown"]), new("pose", ["arms_up", "standing"])];
        int[] timesteps = [300, 900];

        var masks = stack(examples.Select(e => e.Mask!).ToArray());
        var rows = DenoisingDiagnostics.TagSensitivity(model, images, prompts, attributes, timesteps, seed: 4, batchSize: 3, figureMasks: masks);
        Assert.All(rows, r => Assert.NotNull(r.FigureRatio));
        // Every prompt names a hair colour, half of them "smile"; none a pose, so pose has no row.
        Assert.Equal([DenoisingDiagnostics.WholePrompt, "hair", "expression"], rows.Where(r => r.Timestep == 300).Select(r => r.Attribute));
        Assert.Equal([8, 8, 4], rows.Where(r => r.Timestep == 900).Select(r => r.Images));
        // A freshly initialised model's cross-attention already makes its output depend on the prompt.
        Assert.Contains(rows, r => Math.Abs(r.Ratio - 1) > 1e-4);
        // The batch size only regroups the same forward passes.
        var regrouped = DenoisingDiagnostics.TagSensitivity(model, images, prompts, attributes, timesteps, seed: 4, batchSize: 8);
        Assert.Equal(rows.Select(r => r.OwnPromptX0Mse), regrouped.Select(r => r.OwnPromptX0Mse), new ToleranceComparer(1e-5));
        Assert.All(regrouped, r => Assert.Null(r.FigureRatio));
        // The figure (the centre quarter) is where the error is measured: its mean differs from the whole picture's.
        Assert.All(rows, r => Assert.NotEqual(r.OwnPromptX0Mse, r.OwnFigureX0Mse!.Value, 6));
        Assert.Throws<ArgumentException>(() => DenoisingDiagnostics.TagSensitivity(model, images, prompts, attributes, timesteps, seed: 4, figureMasks: masks.narrow(0, 0, 2)));

        // With the cross-attention outputs zeroed the text cannot reach the picture: swapping any tag changes nothing.
        using (no_grad())
            foreach (var (name, parameter) in model.Unet.named_parameters())
                if (name.Contains("attn2.to_out")) parameter.zero_();
        var deaf = DenoisingDiagnostics.TagSensitivity(model, images, prompts, attributes, timesteps, seed: 4, figureMasks: masks);
        Assert.All(deaf, r => Assert.Equal(r.OwnPromptX0Mse, r.SwappedX0Mse, 6));
        Assert.All(deaf, r => Assert.Equal(r.OwnFigureX0Mse!.Value, r.SwappedFigureX0Mse!.Value, 6));
    }

    sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= tolerance * Math.Max(1, Math.Abs(a));
        public int GetHashCode(double value) => 0;
    }

    [Fact]
    public void Skip_unseen_leaves_the_unseen_characters_pictures_out_of_base_training_and_new_base_settings_keep_old_keys()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 6, size: 16);
        var recordsFile = Path.Combine(data, DatasetLayout.RecordsFile);
        // Pictures 0001 and 0003 belong to an unseen character.
        var records = File.ReadAllLines(recordsFile).Select(l => JsonSerializer.Deserialize<ImageRecord>(l, WorkbenchJson.Lines)!)
            .Select(r => r with { Split = r.Id is "0001" or "0003" ? "unseen" : "train" }).ToList();
        File.WriteAllLines(recordsFile, records.Select(r => JsonSerializer.Serialize(r, WorkbenchJson.Lines)));

        Assert.Equal(6, new DatasetFolderSource(data, 16, include: new BaseTrainingOptions().Include).Count);
        var skipping = new DatasetFolderSource(data, 16, include: new BaseTrainingOptions { SkipUnseen = true }.Include);
        Assert.Equal(["0000", "0002", "0004", "0005"], Enumerable.Range(0, skipping.Count).Select(i => skipping.Get(i).Id));

        var console = new TestConsole().Width(200);
        Assert.True(CliApp.Run(["train-base", "--data", data, "--steps", "1", "--batch", "2", "--skip-unseen", "true", "--out", Path.Combine(dir.Path, "run")], console) == 0, console.Output);
        Assert.Contains("4 images", console.Output);

        // Left at their defaults the new settings are not written, so every earlier base stage key stays valid.
        var json = JsonSerializer.Serialize(new BaseTrainingOptions());
        foreach (var name in new[] { "skip_unseen", "background_weight", "attention_levels", "pooled_text" }) Assert.DoesNotContain(name, json);
        Assert.Contains("skip_unseen", JsonSerializer.Serialize(new BaseTrainingOptions { SkipUnseen = true }));
    }

    [Fact]
    public void Extra_channel_widths_add_levels_at_the_top_without_attention_and_fewer_drop_top_levels()
    {
        Torch.Load();
        var deeper = new BaseTrainingOptions { Channels = "16,32,64,64", PatchSize = 1 }.FreshModelConfig();
        Assert.Equal(["DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], deeper.Unet.DownBlockTypes);
        Assert.Equal(["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"], deeper.Unet.UpBlockTypes);
        Assert.Equal((3, 32), (deeper.Unet.InChannels, deeper.Unet.SampleSize));
        var shallower = new BaseTrainingOptions { Channels = "64,64" }.FreshModelConfig();
        Assert.Equal(["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"], shallower.Unet.DownBlockTypes);
        Assert.Equal(["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], shallower.Unet.UpBlockTypes);
        Assert.Equal(ModelConfigs.Tiny.Unet.DownBlockTypes, new BaseTrainingOptions { Channels = "48,64,64" }.FreshModelConfig().Unet.DownBlockTypes);
        // Attention levels count from the deepest level; the up path mirrors the down path.
        var everywhere = new BaseTrainingOptions { AttentionLevels = 3 }.FreshModelConfig().Unet;
        Assert.All(everywhere.DownBlockTypes, t => Assert.Equal("CrossAttnDownBlock2D", t));
        Assert.All(everywhere.UpBlockTypes, t => Assert.Equal("CrossAttnUpBlock2D", t));
        Assert.Equal(ModelConfigs.Tiny.Unet.DownBlockTypes, new BaseTrainingOptions { AttentionLevels = 2 }.FreshModelConfig().Unet.DownBlockTypes);
        Assert.Equal(ModelConfigs.Tiny.Unet.UpBlockTypes, new BaseTrainingOptions { AttentionLevels = 2 }.FreshModelConfig().Unet.UpBlockTypes);
        var deepest = new BaseTrainingOptions { Channels = "16,32,64,64", AttentionLevels = 1 }.FreshModelConfig().Unet;
        Assert.Equal(["DownBlock2D", "DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"], deepest.DownBlockTypes);
        Assert.Equal(["CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"], deepest.UpBlockTypes);
        // The four-level U-Net runs at full resolution: [B, 3, 32, 32] in, the same shape out.
        using var scope = NewDisposeScope();
        using var unet = new UNet2DConditionModel(deeper.Unet);
        var output = unet.Forward(randn(1, 3, 32, 32), tensor(10L), randn(1, 4, deeper.Unet.CrossAttentionDim));
        Assert.Equal([1L, 3, 32, 32], output.shape);
    }

    [Fact]
    public void Pooled_text_reaches_the_time_embedding_of_every_resnet_and_is_saved_in_the_config()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var pooled = new BaseTrainingOptions { PooledText = true }.FreshModelConfig().Unet;
        Assert.Equal(PooledTextEmbedding.Type, pooled.AdditionEmbedType);
        Assert.Null(new BaseTrainingOptions().FreshModelConfig().Unet.AdditionEmbedType);
        var (promptA, promptB) = (randn(1, 4, pooled.CrossAttentionDim), randn(1, 4, pooled.CrossAttentionDim));
        var t = tensor(new[] { 500L });
        using var noGrad = no_grad();
        // The embedding every ResNet block reads (the top level's, which has no attention, included) depends on the prompt
        // only with pooling.
        Seeding.Seed(3);
        using (var withPooling = new UNet2DConditionModel(pooled))
            Assert.False(withPooling.TimeEmbedding(t, promptA, ScalarType.Float32).allclose(withPooling.TimeEmbedding(t, promptB, ScalarType.Float32)));
        Seeding.Seed(3);
        using (var without = new UNet2DConditionModel(pooled with { AdditionEmbedType = null }))
            Assert.True(without.TimeEmbedding(t, promptA, ScalarType.Float32).eq(without.TimeEmbedding(t, promptB, ScalarType.Float32)).all().item<bool>());

        using var dir = new TempDir();
        var file = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(file, DiffusersConfigJson.Write(pooled));
        Assert.Equal(PooledTextEmbedding.Type, DiffusersConfigJson.ReadUnet(file).AdditionEmbedType);
        File.WriteAllText(file, DiffusersConfigJson.Write(ModelConfigs.Tiny.Unet));
        Assert.DoesNotContain("addition_embed_type", File.ReadAllText(file));
        Assert.Null(DiffusersConfigJson.ReadUnet(file).AdditionEmbedType);
        File.WriteAllText(file, DiffusersConfigJson.Write(pooled).Replace(PooledTextEmbedding.Type, "text_attention"));
        var error = Assert.Throws<InvalidDataException>(() => DiffusersConfigJson.ReadUnet(file));
        Assert.Contains(file, error.Message);
        Assert.Contains("addition_embed_type 'text_attention'", error.Message);
    }

    [Fact]
    public void A_batch_split_across_threads_trains_the_same_model_up_to_rounding_and_reproducibly()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 7, size: 16);
        var options = new TrainerOptions { Steps = 5, BatchSize = 5, LearningRate = 2e-3, WarmupSteps = 1, Seed = 3, EmaDecay = 0.9 };
        var single = Train(data, Path.Combine(dir.Path, "one"), options);
        var split = Train(data, Path.Combine(dir.Path, "three"), options, shards: 3);
        var again = Train(data, Path.Combine(dir.Path, "three-again"), options, shards: 3);
        Assert.Equal(1, single.Shards);
        Assert.Equal(3, split.Shards);
        // Uneven shards (2 + 2 + 1 examples) weighted by their share: the same loss and gradient up to float rounding.
        for (int i = 0; i < options.Steps; i++)
            Assert.True(Math.Abs(single.Losses[i] - split.Losses[i]) <= 1e-4 * Math.Abs(single.Losses[i]), $"step {i}: {single.Losses[i]} vs {split.Losses[i]}");
        // Gradients are summed in shard order, not in finishing order: reruns are bit-identical.
        Assert.Equal(split.Losses.Select(BitConverter.DoubleToInt64Bits), again.Losses.Select(BitConverter.DoubleToInt64Bits));
        var a = SafeTensors.Load(Path.Combine(dir.Path, "one", "model", "unet", ModelStore.UnetWeights));
        var b = SafeTensors.Load(Path.Combine(dir.Path, "three", "model", "unet", ModelStore.UnetWeights));
        // Adam divides by the gradient's running RMS, so where a gradient is ~0 rounding can move a weight by up to
        // lr per step; everywhere else the weights agree closely.
        double maxShift = options.Steps * options.LearningRate;
        Assert.All(a, kv => Assert.True(kv.Value.allclose(b[kv.Key], rtol: 0, atol: maxShift), $"{kv.Key}: max difference {(kv.Value - b[kv.Key]).abs().max().item<float>()}"));
        double typical = a.Keys.Select(k => (a[k] - b[k]).abs().mean().item<float>()).Average();
        Assert.True(typical < 1e-4, $"mean weight difference {typical}");
        Assert.True(split.DataWaitSeconds >= 0 && double.IsFinite(split.DataWaitSeconds));
        // A split wider than the batch uses one example per thread.
        var source = new DatasetFolderSource(data, Micro.ImageSize);
        using var model = BaseModelFactory.Create(Micro, source, 0);
        Assert.Equal(5, new DiffusionTrainer(new TextToImageTask(model, source), options) { Shards = 16 }.ResolveShards());
        Assert.Equal([(0, 2), (2, 2), (4, 1)], TorchWorker.Split(5, 3));
    }

    [Fact]
    public void The_flat_buffer_holds_the_parameters_and_adamw_matches_the_formula_per_learning_rate_group()
    {
        Torch.Load();
        using var a = new TorchSharp.Modules.Parameter(TorchSharp.torch.tensor(new[] { 1f, -2f }));
        using var b = new TorchSharp.Modules.Parameter(TorchSharp.torch.tensor(new[] { 0.5f }));
        using var buffer = new ParameterBuffer([new("a", a), new("b", b)], name => name == "b" ? 0.1 : 1.0);
        Assert.Equal(2, buffer.Groups.Count);
        // The parameters are views: the loss's gradient lands in the flat buffer.
        var loss = (a * a).sum() + (b * 3).sum();
        loss.backward();
        Assert.Equal([2f, -4f, 3f], buffer.Gradients.data<float>().ToArray());
        using var optimizer = new AdamW(buffer) { WeightDecay = 0.1 };
        optimizer.Step(0.01);
        // Step 1 of AdamW: m = (1-b1) g, v = (1-b2) g^2, update = lr m/(1-b1) / (sqrt(v/(1-b2)) + eps) = lr sign(g).
        static float Expected(float p, float g, double lr) => (float)(p * (1 - lr * 0.1) - lr * g / (Math.Abs(g) + 1e-8));
        Assert.Equal(Expected(1f, 2f, 0.01), a.data<float>()[0], 6);
        Assert.Equal(Expected(-2f, -4f, 0.01), a.data<float>()[1], 6);
        Assert.Equal(Expected(0.5f, 3f, 0.001), b.data<float>()[0], 6);
        // Clipping scales the flat gradient to the requested norm and reports the norm before.
        double norm = buffer.ClipGradNorm(1.0);
        Assert.Equal(Math.Sqrt(4 + 16 + 9), norm, 5);
        Assert.Equal(1.0, buffer.Gradients.norm().item<float>(), 4);
        buffer.ZeroGradients();
        Assert.Equal(0f, buffer.Gradients.abs().sum().item<float>());
        Assert.Equal(0f, a.grad!.abs().sum().item<float>());
    }

    [Fact]
    public void Ema_warms_up_so_the_initial_weights_fade_out()
    {
        Assert.Equal(0.1, ExponentialMovingAverage.EffectiveDecay(0.999, 0), 12);
        Assert.Equal(0.5, ExponentialMovingAverage.EffectiveDecay(0.999, 8), 12);
        Assert.Equal(0.999, ExponentialMovingAverage.EffectiveDecay(0.999, 100_000), 12);
        // Weight of the initial value after n updates: prod of the decays. With warm-up it is ~1e-4 after 2000
        // steps at 0.999 (without: 0.999^2000 = 0.135).
        double remaining = 1;
        for (long step = 0; step < 2000; step++) remaining *= ExponentialMovingAverage.EffectiveDecay(0.999, step);
        Assert.True(remaining < 1e-3, $"initial weights keep {remaining:E2} of the average");
        Torch.Load();
        using var p = new TorchSharp.Modules.Parameter(TorchSharp.torch.zeros(1));
        using var buffer = new ParameterBuffer([new("p", p)]);
        using var ema = new ExponentialMovingAverage(buffer, 0.999);
        using (TorchSharp.torch.no_grad()) p.fill_(1f);
        ema.Update(0);
        Assert.Equal(0.9f, ema.Shadow["p"].item<float>(), 6);
    }

    /// <summary>A text-to-image task whose loss is NaN for the first <paramref name="faults"/> computations of one step's batch.</summary>
    sealed class FaultyStepTask(TextToImageTask inner, long faultyStep, int faults) : ITrainingTask
    {
        readonly System.Collections.Concurrent.ConcurrentDictionary<ITrainingBatch, long> steps = new();
        int remaining = faults;
        public int ExampleCount => inner.ExampleCount;
        public IReadOnlyList<KeyValuePair<string, TorchSharp.Modules.Parameter>> TrainableParameters => inner.TrainableParameters;
        public ITrainingBatch Prepare(int[] batch, long step, TorchSharp.torch.Generator generator)
        {
            var prepared = inner.Prepare(batch, step, generator);
            steps[prepared] = step;
            return prepared;
        }
        public Tensor Loss(ITrainingBatch batch, int start, int count)
        {
            var loss = inner.Loss(batch, start, count);
            if (steps[batch] != faultyStep || Interlocked.Decrement(ref remaining) < 0) return loss;
            using var scope = NewDisposeScope();
            return loss.Times(double.NaN).MoveToOuterDisposeScope();
        }
        public void SaveModel(string folder) => inner.SaveModel(folder);
        public void LoadModel(string folder) => inner.LoadModel(folder);
        public System.Text.Json.Nodes.JsonObject Describe() => inner.Describe();
    }

    [Fact]
    public void A_step_with_a_non_finite_gradient_is_computed_again_once_and_a_repeated_one_stops_the_run()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 6, size: 16);
        var options = new TrainerOptions { Steps = 4, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 1, Seed = 9, EmaDecay = 0.9 };
        TrainingResult Run(string name, int faults)
        {
            var source = new DatasetFolderSource(data, Micro.ImageSize);
            using var model = BaseModelFactory.Create(Micro, source, options.Seed);
            var task = new FaultyStepTask(new TextToImageTask(model, source, promptDropout: 0.25), faultyStep: 2, faults);
            return new DiffusionTrainer(task, options) { Shards = 1 }.Run(Path.Combine(dir.Path, name), progress: null);
        }
        var clean = Run("clean", faults: 0);
        var transient = Run("transient", faults: 1);
        Assert.Empty(clean.RecomputedSteps); // before conv_out ran by matmul, about 1 clean run in 6 had a NaN gradient at step 0 with oneDNN on an AVX-512 EPYC
        Assert.Null(clean.RecomputedNote);
        Assert.Equal([2L], transient.RecomputedSteps);
        Assert.Contains("1 step(s) (2)", transient.RecomputedNote);
        // The recomputed step is the step a clean run takes: same losses, same model to the bit.
        Assert.Equal(clean.Losses.Select(BitConverter.DoubleToInt64Bits), transient.Losses.Select(BitConverter.DoubleToInt64Bits));
        var a = SafeTensors.Load(Path.Combine(dir.Path, "clean", "model", "unet", ModelStore.UnetWeights));
        var b = SafeTensors.Load(Path.Combine(dir.Path, "transient", "model", "unet", ModelStore.UnetWeights));
        Assert.All(a, kv => Assert.True(kv.Value.Equals(b[kv.Key]), kv.Key));
        var log = File.ReadAllLines(Path.Combine(dir.Path, "transient", DiffusionTrainer.LossLog))
            .Select(l => JsonSerializer.Deserialize<LossLogEntry>(l, WorkbenchJson.Lines)!).ToList();
        Assert.Equal([null, null, true, null], log.Select(e => e.Recomputed));
        Assert.Equal(transient.Losses.Count, log.Count);
        Assert.NotNull(log[2].NonFiniteParameter); // the loss was NaN, so every gradient is; the first parameter is named
        Assert.Null(log[1].NonFiniteParameter);
        Assert.DoesNotContain("recomputed", File.ReadAllText(Path.Combine(dir.Path, "clean", DiffusionTrainer.LossLog)));

        var error = Assert.Throws<InvalidOperationException>(() => Run("diverged", faults: 2));
        Assert.StartsWith("step 2: gradient norm is NaN", error.Message);
        Assert.Contains("computed again", error.Message);
    }

    [Fact]
    public void Stop_and_resume_gives_bit_identical_losses()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 6, size: 16, broken: true);
        var options = new TrainerOptions { Steps = 6, BatchSize = 4, LearningRate = 2e-3, WarmupSteps = 2, Seed = 42, EmaDecay = 0.9 };

        // Split across two threads (as the default does on a 2-core machine), with a prefetched batch in flight at the stop.
        var full = Train(data, Path.Combine(dir.Path, "full"), options, shards: 2);
        Assert.True(full.Finished);
        Assert.Equal(6, full.Losses.Count);

        var first = Train(data, Path.Combine(dir.Path, "split"), options with { StopAfter = 3 }, shards: 2);
        Assert.False(first.Finished);
        Assert.Equal(3, first.StepsDone);
        Assert.Equal(full.Losses.Take(3), first.Losses);
        var second = Train(data, Path.Combine(dir.Path, "split"), options, resume: true, shards: 2);
        Assert.True(second.Finished);
        Assert.Equal(3, second.Losses.Count);
        for (int i = 0; i < 3; i++)
            Assert.Equal(BitConverter.DoubleToInt64Bits(full.Losses[3 + i]), BitConverter.DoubleToInt64Bits(second.Losses[i]));

        // The loss log of the resumed run is the whole run, one line per step.
        var log = File.ReadAllLines(Path.Combine(dir.Path, "split", DiffusionTrainer.LossLog));
        Assert.Equal(6, log.Length);
        Assert.Equal(5, JsonSerializer.Deserialize<LossLogEntry>(log[^1], WorkbenchJson.Lines)!.Step);

        // The exported models are identical, loadable diffusers folders (EMA weights).
        var a = SafeTensors.Load(Path.Combine(dir.Path, "full", "model", "unet", ModelStore.UnetWeights));
        var b = SafeTensors.Load(Path.Combine(dir.Path, "split", "model", "unet", ModelStore.UnetWeights));
        Assert.All(a, kv => Assert.True(kv.Value.Equals(b[kv.Key]), kv.Key));
        using var reloaded = ModelStore.LoadDiffusers(Path.Combine(dir.Path, "full", "model"));
        Assert.Null(reloaded.Vae);
        Assert.Equal(16, reloaded.Config.ImageSize);
    }

    [Fact]
    public void Dataset_source_skips_and_reports_bad_images()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 3, broken: true);
        var source = new DatasetFolderSource(data, 32);
        Assert.Equal(3, source.Count);
        var skipped = Assert.Single(source.Skipped);
        Assert.EndsWith("bad.png", skipped.Path);
        var example = source.Get(1);
        Assert.Equal(new long[] { 3, 32, 32 }, example.Image.shape);
        Assert.Equal(Tags[1], example.Prompt);
        Assert.NotNull(example.Mask);
        Assert.Equal(new long[] { 1, 32, 32 }, example.Mask!.shape);
        Assert.Equal(0.25, example.Mask.mean().item<float>(), 2);

        // Lazy mode (large images) checks headers up front and decodes on demand, with the same pixels.
        var lazy = new DatasetFolderSource(data, 32, preload: false);
        Assert.False(lazy.Preloaded);
        Assert.Single(lazy.Skipped);
        Assert.True(lazy.Get(1).Image.Equals(example.Image));

        // A record whose image claims 40000x40000 pixels, or that points outside the dataset: skipped with the reason, in both modes.
        File.WriteAllBytes(Path.Combine(data, "images", "bomb.png"), DataTestFiles.PngClaiming(40000, 40000));
        File.AppendAllLines(Path.Combine(data, DatasetLayout.RecordsFile), [
            JsonSerializer.Serialize(new ImageRecord { Id = "bomb", Image = "images/bomb.png", Character = "c0", Prompts = "1girl" }, WorkbenchJson.Lines),
            JsonSerializer.Serialize(new ImageRecord { Id = "out", Image = "../../outside.png", Character = "c0", Prompts = "1girl" }, WorkbenchJson.Lines)]);
        foreach (var preload in new[] { true, false })
        {
            var skippedNow = new DatasetFolderSource(data, 32, preload: preload).Skipped;
            Assert.Contains(skippedNow, s => s.Path.EndsWith("bomb.png") && s.Reason.Contains("40000x40000"));
            Assert.Contains(skippedNow, s => s.Reason.Contains("'../../outside.png' leads outside"));
        }
    }

    [Fact]
    public void Training_reduces_the_loss_and_sampling_is_seeded()
    {
        using var dir = new TempDir();
        var data = WriteDataset(dir, 8, size: 16);
        var source = new DatasetFolderSource(data, 16);
        using var model = BaseModelFactory.Create(Micro, source, seed: 1);
        var task = new TextToImageTask(model, source);
        var result = new DiffusionTrainer(task, new TrainerOptions { Steps = 40, BatchSize = 8, LearningRate = 3e-3, WarmupSteps = 5, Seed = 1 }).Run(Path.Combine(dir.Path, "out"));
        double early = result.Losses.Take(5).Average(), late = result.Losses.Skip(35).Average();
        Assert.True(late < 0.8 * early, $"loss did not fall: first 5 {early:F4}, last 5 {late:F4}");

        var options = new SamplingOptions { Steps = 5, GuidanceScale = 2.0, Seed = 3 };
        var images = TextToImage.Generate(model, ["1girl, red_hair", "1boy"], options);
        Assert.Equal(new long[] { 2, 3, 16, 16 }, images.shape);
        Assert.True(images.Equals(TextToImage.Generate(model, ["1girl, red_hair", "1boy"], options)));
        Assert.False(images.Equals(TextToImage.Generate(model, ["1girl, red_hair", "1boy"], options with { Seed = 4 })));
    }
}

/// <summary>Changes the process-wide thread count for a moment: other tests' numbers depend on it, so it runs alone.</summary>
[Collection(ProcessWideStateCollection.Name)]
public class TorchWorkerTests
{
    [Fact]
    public async Task Workers_keep_their_own_intra_op_thread_count_after_the_caller_restores_its_own()
    {
        Torch.Load();
        int caller = TorchSharp.torch.get_num_threads();
        var workers = TorchWorker.StartMany(2, intraOpThreads: caller + 2, "test-worker");
        try
        {
            Assert.Equal(caller, TorchSharp.torch.get_num_threads());
            foreach (var worker in workers)
            {
                // A large op (past libtorch's serial grain size) after the caller restored the process-wide count.
                int seen = await worker.Run(() =>
                {
                    using var x = TorchSharp.torch.ones(1 << 20);
                    using var sum = x.sum();
                    return TorchSharp.torch.get_num_threads();
                });
                Assert.Equal(caller + 2, seen);
            }
            var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => workers[0].Run<int>(() => throw new InvalidOperationException("boom")));
            Assert.Equal("boom", failure.Message);
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }
    }
}
